"""``make demo``: until the distillation engine lands, print the default dataset's summary."""

from podd.data import load_dataset, summary

if __name__ == "__main__":
    print(summary(load_dataset("digits")))
