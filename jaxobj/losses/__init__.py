"""Loss families. Importing this package registers every loss."""

from jaxobj.losses import classification, regression
from jaxobj.losses.classification import *  # noqa: F401,F403
from jaxobj.losses.regression import *  # noqa: F401,F403

__all__ = classification.__all__ + regression.__all__
