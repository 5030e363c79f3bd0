"""Loss families. Importing this package registers every loss."""

from jaxobj.losses import (
  calibration,
  classification,
  contrastive,
  contrastive_sharded,
  distribution,
  generative,
  metric_learning,
  metrics,
  preference,
  ranking,
  regression,
  robust,
  segmentation,
  sequence,
)
from jaxobj.losses.calibration import *  # noqa: F401,F403
from jaxobj.losses.classification import *  # noqa: F401,F403
from jaxobj.losses.contrastive import *  # noqa: F401,F403
from jaxobj.losses.contrastive_sharded import *  # noqa: F401,F403
from jaxobj.losses.distribution import *  # noqa: F401,F403
from jaxobj.losses.generative import *  # noqa: F401,F403
from jaxobj.losses.metric_learning import *  # noqa: F401,F403
from jaxobj.losses.metrics import *  # noqa: F401,F403
from jaxobj.losses.preference import *  # noqa: F401,F403
from jaxobj.losses.ranking import *  # noqa: F401,F403
from jaxobj.losses.regression import *  # noqa: F401,F403
from jaxobj.losses.robust import *  # noqa: F401,F403
from jaxobj.losses.segmentation import *  # noqa: F401,F403
from jaxobj.losses.sequence import *  # noqa: F401,F403

__all__ = (
  calibration.__all__
  + classification.__all__
  + contrastive.__all__
  + contrastive_sharded.__all__
  + distribution.__all__
  + generative.__all__
  + metric_learning.__all__
  + metrics.__all__
  + preference.__all__
  + ranking.__all__
  + regression.__all__
  + robust.__all__
  + segmentation.__all__
  + sequence.__all__
)
