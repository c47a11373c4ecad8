"""The names a user chooses from — profiles, modes, engines, devices, distributed variants,
executors, experiment trackers, poster initialisations and truncated-step precisions — in one
leaf module without torch: the library (:mod:`podd.config` first) checks against them, and the
command line offers exactly them without importing the library (``podd --help`` starts at once)."""

PROFILES = ("smoke", "quick", "paper")
MODES = ("podd", "baseline", "per-class")  # podd.modes holds one object per name
ENGINES = ("auto", "eager", "compiled")
DEVICES = ("auto", "cpu", "cuda")
VARIANTS = ("tasks", "real-batch")  # --distributed
EXECUTORS = ("local", "slurm", "debug", "submitit-local")
TRACKERS = ("tensorboard", "wandb")  # --log (podd.tracking), each an optional extra
#: Poster initialisations (podd.poster). ``class_areas`` is the authors' (the presets' default);
#: ``gaussian`` is the paper text's "standard Gaussian noise" at the same per-pixel scale;
#: ``real`` starts from the class means of the real images.
INITS = ("class_areas", "gaussian", "real")
TRUNCATED_DTYPES = ("float32", "bfloat16")  # podd.ratbptt maps each name to its torch dtype
#: Networks the evaluation protocol trains (podd.architectures): the ConvNet a poster is
#: distilled with, and the cross-architecture ones of DC-Bench / DD-Ranking.
EVAL_ARCHS = ("convnet", "resnet18", "vgg11", "alexnet")
