"""The names a user chooses from — profiles, modes, engines, devices, distributed variants and
executors — in one leaf module without torch: the library checks against them, and the command
line offers exactly them without importing the library (``podd --help`` starts at once)."""

PROFILES = ("smoke", "quick", "paper")
MODES = ("podd", "baseline", "per-class")       # podd.modes holds one object per name
ENGINES = ("auto", "eager", "compiled")
DEVICES = ("auto", "cpu", "cuda")
VARIANTS = ("tasks", "real-batch")               # --distributed
EXECUTORS = ("local", "slurm", "debug", "submitit-local")
