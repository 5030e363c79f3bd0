"""The coverage table's data: every loss of the peer libraries and its jaxobj counterpart.

Each peer's catalogue is written down here as data (the peers are not imported: only optax
and rax are installed, for the tests, which check these lists against them). A row gives the
peer's name and either a ``counterpart`` -- a name the registry resolves (aliases included) or
a public jaxobj function, optionally called with the keyword settings that make it the peer's
loss -- or a ``recipe``: a short jaxobj expression (placeholders for the data, ``jnp`` for
``jax.numpy``). ``note`` says what differs. ``GAPS`` lists what jaxobj does not have yet;
``docs/hooks/coverage.py`` renders both on the coverage page and ``tests/test_coverage.py``
checks that every counterpart and recipe resolves.
"""

from __future__ import annotations

from typing import NamedTuple


class Row(NamedTuple):
  name: str
  counterpart: str | None = None
  recipe: str | None = None
  note: str = ""


# (key, title, what the list covers, the prefix that qualifies a peer's name on the page)
PEERS: tuple[tuple[str, str, str, str], ...] = (
  ("optax", "optax", "every public function of `optax.losses`", "optax.losses."),
  (
    "rax",
    "rax",
    "rax's losses, metrics, LambdaLoss weights and transformations (`t12n`)",
    "rax.",
  ),
  ("keras", "Keras", "the loss functions of `keras.losses` (Keras 3)", "keras.losses."),
  ("torch", "torch.nn.functional", "its loss functions", "torch.nn.functional."),
  (
    "pml",
    "pytorch-metric-learning",
    "the losses of `pytorch_metric_learning.losses` (not its wrappers and base classes)",
    "pytorch_metric_learning.losses.",
  ),
  (
    "monai",
    "MONAI",
    "the losses of `monai.losses` (its `MaskedLoss` wrapper is the `where` of every jaxobj loss)",
    "monai.losses.",
  ),
  ("trl", "TRL", "the trainers' losses and their `loss_type` values", ""),
)

_OPTAX = (
  Row("squared_error", "squared_error"),
  Row("l2_loss", "l2_loss"),
  Row("huber_loss", "huber_loss"),
  Row("log_cosh", "log_cosh"),
  Row(
    "cosine_similarity",
    recipe="-negative_cosine_similarity(predictions, targets)",
    note="jaxobj's loss is the negative; the targets get no gradient",
  ),
  Row(
    "cosine_distance",
    recipe="1 + negative_cosine_similarity(predictions, targets)",
    note="the targets get no gradient",
  ),
  Row("sigmoid_binary_cross_entropy", "sigmoid_binary_cross_entropy"),
  Row("sigmoid_focal_loss", "sigmoid_focal_loss"),
  Row("softmax_cross_entropy", "softmax_cross_entropy"),
  Row("safe_softmax_cross_entropy", "softmax_cross_entropy", note="safe with `-inf` logits"),
  Row("softmax_cross_entropy_with_integer_labels", "softmax_cross_entropy_with_integer_labels"),
  Row("poly_loss_cross_entropy", "poly_loss_cross_entropy"),
  Row("smooth_labels", "smooth_labels"),
  Row("hinge_loss", "hinge_loss"),
  Row("perceptron_loss", "hinge_loss(margin=0.0)"),
  Row("multiclass_hinge_loss", "multiclass_hinge_loss"),
  Row("multiclass_perceptron_loss", "multiclass_hinge_loss(margin=0.0)"),
  Row("sparsemax_loss", "sparsemax_loss"),
  Row("multiclass_sparsemax_loss", "multiclass_sparsemax_loss"),
  Row("make_fenchel_young_loss", "make_fenchel_young_loss"),
  Row("kl_divergence", "kl_divergence"),
  Row("kl_divergence_with_log_targets", "kl_divergence_with_log_targets"),
  Row("convex_kl_divergence", "generalized_kl_divergence", note="optax's former name"),
  Row("generalized_kl_divergence", "generalized_kl_divergence"),
  Row("ctc_loss", "ctc_loss"),
  Row("ctc_loss_with_forward_probs", "ctc_loss_with_forward_probs"),
  Row("ntxent", "ntxent"),
  Row("triplet_margin_loss", "triplet_margin_loss"),
  Row("ranking_softmax_loss", "softmax_loss", note="rax's name (ListNet)"),
  Row("dice_loss", "dice_loss", note="optax's `smooth=s` is `smooth_nr=2 * s, smooth_dr=2 * s`"),
  Row("binary_dice_loss", "dice_loss(activation='sigmoid', smooth_nr=2.0, smooth_dr=2.0)"),
  Row("multiclass_generalized_dice_loss", "dice_loss(class_weights='inverse_square_frequency')"),
)

_RAX = (
  *(
    Row(n, n)
    for n in (
      "softmax_loss",
      "poly1_softmax_loss",
      "unique_softmax_loss",
      "listmle_loss",
      "pairwise_hinge_loss",
      "pairwise_logistic_loss",
      "pairwise_mse_loss",
      "pairwise_qr_loss",
      "pairwise_soft_zero_one_loss",
      "pointwise_mse_loss",
      "pointwise_sigmoid_loss",
      "ap_metric",
      "dcg_metric",
      "mrr_metric",
      "ndcg_metric",
      "opa_metric",
      "precision_metric",
      "recall_metric",
      "dcg_lambdaweight",
      "dcg2_lambdaweight",
      "labeldiff_lambdaweight",
      "approx_t12n",
      "bound_t12n",
      "gumbel_t12n",
      "segment_t12n",
    )
  ),
  Row("utils.pairwise_loss", "make_pairwise_loss", note="a pairwise loss from any pair function"),
)

_KERAS = (
  Row("mean_squared_error", "mean_squared_error"),
  Row("mean_absolute_error", "mean_absolute_error"),
  Row(
    "mean_absolute_percentage_error",
    recipe="100 * absolute_percentage_error(y_pred, y_true)",
    note="Keras's is a percentage",
  ),
  Row("mean_squared_logarithmic_error", "mean_squared_logarithmic_error"),
  Row("huber", "huber"),
  Row("log_cosh", "log_cosh"),
  Row("cosine_similarity", "negative_cosine_similarity", note="the targets get no gradient"),
  Row("hinge", "hinge", note="labels in {-1, +1} (Keras maps {0, 1})"),
  Row("squared_hinge", "squared_hinge"),
  Row("categorical_hinge", "categorical_hinge"),
  Row(
    "binary_crossentropy",
    recipe="sigmoid_binary_cross_entropy(jnp.log(p) - jnp.log1p(-p), y)",
    note="Keras takes probabilities by default; with `from_logits=True` it is "
    "`sigmoid_binary_cross_entropy` on the logits",
  ),
  Row(
    "categorical_crossentropy",
    recipe="softmax_cross_entropy(jnp.log(p), y)",
    note="Keras takes probabilities by default; with logits, `softmax_cross_entropy`",
  ),
  Row(
    "sparse_categorical_crossentropy",
    recipe="softmax_cross_entropy_with_integer_labels(jnp.log(p), labels)",
    note="with logits, `softmax_cross_entropy_with_integer_labels`",
  ),
  Row("binary_focal_crossentropy", "sigmoid_focal_loss", note="on logits (`from_logits=True`)"),
  Row(
    "categorical_focal_crossentropy", "softmax_focal_loss", note="on logits (`from_logits=True`)"
  ),
  Row(
    "kl_divergence",
    recipe="kl_divergence(jnp.log(y_pred), y_true)",
    note="Keras takes probabilities; jaxobj log-probabilities first",
  ),
  Row("poisson", "poisson_nll_loss(log_input=False)"),
  Row(
    "categorical_generalized_cross_entropy",
    recipe="generalized_cross_entropy(jnp.log(p), labels, q=0.5)",
    note="Keras takes probabilities and integer labels, with q = 0.5 by default (jaxobj 0.7)",
  ),
  Row("ctc", "ctc_loss", note="padding masks instead of 0-padded dense labels"),
  Row("dice", "dice_loss(batch=True)", note="on logits; Keras pools the whole batch"),
  Row("tversky", "tversky_loss(batch=True)", note="on logits; Keras pools the whole batch"),
  Row("circle", "circle_loss", note="jaxobj normalizes the embeddings"),
)

_TORCH = (
  Row(
    "binary_cross_entropy",
    recipe="sigmoid_binary_cross_entropy(jnp.log(p) - jnp.log1p(-p), y)",
    note="torch takes probabilities (and clamps the logs at -100)",
  ),
  Row("binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits"),
  Row("cross_entropy", "cross_entropy", note="probability targets: `softmax_cross_entropy`"),
  Row("nll_loss", "nll_loss"),
  Row("kl_div", "kl_divergence", note="torch's `reduction='batchmean'`"),
  Row("poisson_nll_loss", "poisson_nll_loss"),
  Row("gaussian_nll_loss", "gaussian_nll_loss"),
  Row("mse_loss", "mse_loss"),
  Row("l1_loss", "l1_loss"),
  Row("smooth_l1_loss", "smooth_l1_loss"),
  Row("huber_loss", "huber_loss"),
  Row("soft_margin_loss", "soft_margin_loss"),
  Row("margin_ranking_loss", "margin_ranking_loss"),
  Row("hinge_embedding_loss", "hinge_embedding_loss"),
  Row("cosine_embedding_loss", "cosine_embedding_loss"),
  Row("multilabel_margin_loss", "multilabel_margin_loss"),
  Row("multilabel_soft_margin_loss", "multilabel_soft_margin_loss"),
  Row(
    "multi_margin_loss",
    recipe="multilabel_margin_loss(scores, "
    "jnp.where(jnp.arange(scores.shape[-1]) == 0, labels[..., None], -1))",
    note="one target per row, then -1 padding: torch's `multi_margin_loss` (p=1, margin=1); "
    "`multiclass_hinge_loss` takes the worst class instead",
  ),
  Row("triplet_margin_loss", "triplet_margin_loss"),
  Row(
    "triplet_margin_with_distance_loss",
    "triplet_margin_with_distance_loss",
    note="the distance as `distance=`",
  ),
  Row("ctc_loss", "ctc_loss"),
)

_PML = (
  Row("ArcFaceLoss", "arcface_loss", note="the class centers are an argument"),
  Row("CosFaceLoss", "cosface_loss", note="the class centers are an argument"),
  Row("NormalizedSoftmaxLoss", "cosface_loss(margin=0.0)", note="`scale` is 1 / temperature"),
  Row("CircleLoss", "circle_loss"),
  Row(
    "ContrastiveLoss",
    "pairwise_contrastive_loss",
    note="over given pairs, Hadsell et al.'s squared margins",
  ),
  Row("MultiSimilarityLoss", "multi_similarity_loss"),
  Row("NPairsLoss", "npairs_loss"),
  Row("NTXentLoss", "ntxent"),
  Row("SupConLoss", "supervised_contrastive_loss"),
  Row(
    "TripletMarginLoss",
    "batch_all_triplet_loss",
    note="every valid triplet of the batch; `batch_hard_triplet_loss` mines the hardest",
  ),
  Row("VICRegLoss", "vicreg_loss"),
  Row(
    "SmoothAPLoss",
    recipe="smooth_ap_loss(jnp.where(jnp.eye(z.shape[0], dtype=bool), -jnp.inf, z @ z.T), "
    "labels[:, None] == labels[None, :])",
    note="`z` the L2-normalized embeddings: each one a query ranking the rest of the batch "
    "(Brown et al. 2020); the `-inf` diagonal leaves the query out of its own list",
  ),
  Row(
    "ProxyNCALoss",
    "proxy_nca_loss",
    note="`softmax_scale` is `scale`; the denominator includes the positive proxy "
    "(`exclude_positive=True` gives Movshovitz-Attias et al.'s form)",
  ),
  Row(
    "ProxyAnchorLoss",
    "proxy_anchor_loss",
    note="same defaults and mean; `reduction='none'` gives each row its share of the proxies' "
    "terms",
  ),
  Row(
    "SoftTripleLoss",
    "soft_triple_loss",
    note="`la` is `scale`; centers as `[C, K, D]`; the centers' regularizer with `tau` (0 by "
    "default)",
  ),
  Row(
    "LargeMarginSoftmaxLoss",
    "large_margin_softmax_loss",
    note="class weights as `[C, D]`; the integer `margin`",
  ),
  Row(
    "SphereFaceLoss",
    "sphereface_loss",
    note="class weights as `[C, D]`, normalized",
  ),
  Row(
    "SubCenterArcFaceLoss",
    "sub_center_arcface_loss",
    note="the margin in radians; centers as `[C, K, D]`; outlier detection not included",
  ),
  Row(
    "P2SGradLoss",
    "p2sgrad_loss",
    note="a sum over classes per row: pytorch-metric-learning's value times C",
  ),
  Row(
    "InstanceLoss",
    "instance_loss",
    note="`gamma` is `scale`; every row with the same label is a positive",
  ),
  Row(
    "ThresholdConsistentMarginLoss",
    "threshold_consistent_margin_loss",
    note="the TCM regularizer alone: the base loss is another term of the objective",
  ),
  Row(
    "LiftedStructureLoss",
    "lifted_structure_loss",
    note="`neg_margin` is `margin`; its mean over positive pairs is `weights=` each anchor's "
    "positive count; embeddings as given (its default distance normalizes them)",
  ),
  Row(
    "GeneralizedLiftedStructureLoss",
    "generalized_lifted_structure_loss",
    note="`pos_margin=0`, `neg_margin` is `margin`; embeddings as given (normalize them)",
  ),
  Row(
    "MarginLoss",
    "margin_loss",
    note="every pair once (not once per triplet), a mean per anchor; one `beta`, learnable as "
    "an objective parameter (not one per class); embeddings as given (normalize them)",
  ),
  Row(
    "NCALoss",
    "nca_loss",
    note="`softmax_scale` is `scale`; embeddings as given (normalize them)",
  ),
  Row(
    "AngularLoss",
    "angular_loss",
    note="`alpha` in degrees, at most 72; its mean over positive pairs is `weights=` each "
    "anchor's positive count",
  ),
  Row(
    "TupletMarginLoss",
    "tuplet_margin_loss",
    note="`margin` in radians (its 5.73 degrees is 0.1); a mean per anchor",
  ),
  Row(
    "IntraPairVarianceLoss",
    "intra_pair_variance_loss",
    note="per-anchor means of the pair terms: its batch means on P x K batches",
  ),
  Row(
    "SignalToNoiseRatioContrastiveLoss",
    "snr_contrastive_loss",
    note="the mean over each anchor's pairs (not separate non-zero means of the positive and "
    "negative terms); the zero-mean regularizer is a separate objective term",
  ),
  Row("FastAPLoss", "fast_ap_loss", note="`num_bins` intervals over [0, 4]"),
  Row(
    "HistogramLoss",
    "histogram_loss",
    note="its mean over negative pairs is `weights=` each anchor's negative count",
  ),
  Row(
    "RankedListLoss",
    "ranked_list_loss",
    note="`alpha` is a number (1.2 by default; its `None` means `1 + margin / 2`); "
    "embeddings as given (normalize them)",
  ),
  Row(
    "CentroidTripletLoss",
    "centroid_triplet_loss",
    note="a mean per anchor over the other classes; embeddings as given",
  ),
  Row(
    "PNPLoss",
    "pnp_loss",
    note="a query is not its own positive (the authors' code counts it)",
  ),
  Row(
    "DynamicSoftMarginLoss",
    "dynamic_soft_margin_loss",
    note="with labels; the running histogram is explicit state (`dynamic_soft_margin_update`), "
    "its momentum applied to the normalized batch histogram; a mean per anchor",
  ),
  Row(
    "ManifoldLoss",
    "manifold_loss",
    note="each row's proxy as `labels`, the proxies as an argument; `lambdaC=inf` is "
    "`lambda_int=0`",
  ),
)

_MONAI = (
  Row("DiceLoss", "dice_loss"),
  Row("MaskedDiceLoss", "dice_loss", note="the mask as `pixel_where`"),
  Row("GeneralizedDiceLoss", "generalized_dice_loss"),
  Row("DiceCELoss", "dice_ce_loss"),
  Row(
    "DiceFocalLoss",
    recipe="dice_loss(logits, labels) "
    "+ softmax_focal_loss_with_integer_labels(logits, labels) / num_classes",
    note="MONAI with `softmax=True`, whose focal term is a mean over the channels too; "
    "`lambda_dice` and `lambda_focal` as coefficients, or the two as terms of an objective",
  ),
  Row(
    "GeneralizedDiceFocalLoss",
    recipe="generalized_dice_loss(logits, labels) "
    "+ softmax_focal_loss_with_integer_labels(logits, labels) / num_classes",
    note="as `DiceFocalLoss`",
  ),
  Row("FocalLoss", "sigmoid_focal_loss", note="with `use_softmax=True`: `softmax_focal_loss`"),
  Row("TverskyLoss", "tversky_loss"),
  Row("ContrastiveLoss", "ntxent"),
  Row(
    "BarlowTwinsLoss",
    "barlow_twins_loss",
    note="`lambd` is `lambda_param`; jaxobj standardizes as batch norm does (biased variance, eps)",
  ),
  Row("SSIMLoss", "ssim_loss"),
  Row(
    "PerceptualLoss",
    "perceptual_loss",
    note="over the feature extractor you pass (nothing pretrained is downloaded)",
  ),
  Row(
    "PatchAdversarialLoss",
    "gan_discriminator_loss",
    note="and `gan_generator_loss`; the criterion as `loss_type`",
  ),
  Row(
    "BendingEnergyLoss",
    "bending_energy_loss",
    note="displacement fields channels-last, one value per field; `normalize=True` scales by the "
    "image size",
  ),
  Row(
    "DiffusionLoss",
    "diffusion_loss",
    note="as `BendingEnergyLoss`",
  ),
  Row(
    "LocalNormalizedCrossCorrelationLoss",
    "local_normalized_cross_correlation_loss",
    note="the window is cut at the borders (MONAI pads with zeros); box or Gaussian window, no "
    "triangular one",
  ),
  Row(
    "GlobalMutualInformationLoss",
    "global_mutual_information_loss",
    note="per image pair; Gaussian Parzen windows (no B-spline)",
  ),
  Row(
    "SoftclDiceLoss",
    "soft_cldice_loss",
    note="logits in; one value per image (MONAI sums over the batch)",
  ),
  Row(
    "SoftDiceclDiceLoss",
    "soft_dice_cldice_loss",
    note="as `SoftclDiceLoss`",
  ),
  Row(
    "HausdorffDTLoss",
    "hausdorff_dt_loss",
    note="logits in, one value per image; exact Euclidean distance transforms",
  ),
  Row(
    "LogHausdorffDTLoss",
    "log_hausdorff_dt_loss",
    note="log(1 + loss) per image (MONAI takes the log of the batch mean)",
  ),
  Row(
    "AsymmetricUnifiedFocalLoss",
    "asymmetric_unified_focal_loss",
    note="from logits (a stable log-softmax); any number of classes",
  ),
  Row(
    "GeneralizedWassersteinDiceLoss",
    "generalized_wasserstein_dice_loss",
    note="the class distance matrix as `dist_matrix`; class weights alpha_l = M[l, 0]",
  ),
  Row(
    "BoxGIoULoss",
    "box_giou_loss",
    note="corners `(x1, y1, x2, y2)` (or 3-D), one value per box pair",
  ),
  Row(
    "NACLLoss",
    "nacl_loss",
    note="windows cut at the borders (MONAI pads with zeros)",
  ),
  Row(
    "DeepSupervisionLoss",
    recipe="dice_loss(out1, labels) + 0.5 * dice_loss(out2, labels[:, ::2, ::2]) + 0.25 * "
    "dice_loss(out3, labels[:, ::4, ::4])",
    note="MONAI's `weight_mode='exp'`: each coarser output at half the weight, against the labels "
    "subsampled to its size",
  ),
  Row(
    "MultiScaleLoss",
    recipe='jnp.mean(jnp.stack([squared_error(p, t), squared_error(jnp.einsum("ih,jw,bhwc->bijc", '
    'k, k, p), jnp.einsum("ih,jw,bhwc->bijc", k, k, t))]))',
    note="`k` the (H, H) Gaussian filter matrix of one scale; one stacked term per scale; any "
    "loss for `squared_error`",
  ),
  Row(
    "JukeboxLoss",
    recipe='squared_error(jnp.abs(jnp.fft.fftn(x, axes=(1, 2), norm="ortho")), '
    'jnp.abs(jnp.fft.fftn(y, axes=(1, 2), norm="ortho")))',
    note="spatial axes (1, 2) of channels-last images",
  ),
  Row(
    "SURELoss",
    recipe="squared_error(out, y) - sigma**2 + 2 * sigma**2 * jnp.vdot(b, out_b - out) / (eps * "
    "y.size)",
    note="`out = f(y)`, `out_b = f(y + eps * b)`, `b` Gaussian: Stein's unbiased risk estimate "
    "with a Monte-Carlo divergence (Ramani et al. 2008); MONAI's MRI form takes an operator "
    "and combines the terms differently",
  ),
)

_TRL = (
  *(
    Row(f"DPO loss_type='{t}'", f"dpo_loss(loss_type='{t}')")
    for t in ("sigmoid", "hinge", "ipo", "robust")
  ),
  Row("DPO label_smoothing (cDPO)", "dpo_loss(label_smoothing=0.1)"),
  *(
    Row(f"DPO loss_type='{t}'", f"dpo_loss(loss_type='{t}')")
    for t in ("exo_pair", "nca_pair", "sppo_hard", "aot", "aot_pair", "apo_zero", "apo_down")
  ),
  Row(
    "DPO loss_type='bco_pair'",
    "dpo_loss(loss_type='bco_pair')",
    note="the running mean reward, kept by the caller, as `reward_shift`",
  ),
  Row(
    "DPO loss_type='discopop'", "dpo_loss(loss_type='discopop')", note="`discopop_tau` as in TRL"
  ),
  Row(
    "BCO",
    "bco_loss",
    note="the running mean reward as `reward_shift`; density-ratio (UDM) weights as `weights`",
  ),
  Row(
    "DPO loss_type='sft'",
    recipe="token_cross_entropy(chosen_logits, chosen_targets)",
    note="the NLL of the chosen responses",
  ),
  *(
    Row(f"GRPO loss_type='{t}'", f"policy_gradient_loss(loss_type='{t}')")
    for t in ("grpo", "bnpo", "dr_grpo", "dapo", "cispo")
  ),
  Row(
    "GRPO importance_sampling_level='sequence' (GSPO)",
    "policy_gradient_loss(importance_sampling_level='sequence')",
  ),
  Row("PPO", "policy_gradient_preset('ppo')"),
  Row("RLOO", "group_advantages", note="leave-one-out advantages, then `policy_gradient_loss`"),
  Row("KTO", "kto_loss"),
  Row("ORPO", "fused_linear_orpo_loss", note="`orpo_odds_ratio_loss` for the odds-ratio term"),
  *(
    Row(f"CPO loss_type='{t}'", f"fused_linear_cpo_loss(loss_type='{t}')")
    for t in ("sigmoid", "hinge", "ipo")
  ),
  Row("CPO loss_type='simpo' (SimPO)", "simpo_loss"),
  Row("Reward modeling", "bradley_terry_loss", note="with TRL's margin and reward centering"),
  Row(
    "GKD (generalized JSD)",
    "logit_distillation_loss(divergence='jsd', beta=0.5)",
    note="`fused_linear_distillation_loss` at vocabulary scale",
  ),
)

ROWS: dict[str, tuple[Row, ...]] = {
  "optax": _OPTAX,
  "rax": _RAX,
  "keras": _KERAS,
  "torch": _TORCH,
  "pml": _PML,
  "monai": _MONAI,
  "trl": _TRL,
}

# What jaxobj does not have yet: no counterpart and no recipe.
GAPS: dict[str, tuple[str, ...]] = {
  "optax": (),
  "rax": (),
  "keras": (),
  "torch": (),
  "pml": (),
  "monai": (),
  "trl": (),
}
