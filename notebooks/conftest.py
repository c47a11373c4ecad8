"""pytest settings for the notebooks folder (nbval: ``pytest --nbval-lax notebooks``).

* Only the executed ``.ipynb`` files are tests; their Jupytext ``.py`` pairs are the source of the
  same notebooks and must never be imported or collected as test modules.
* Notebooks run by nbval default to the ``smoke`` profile (offline, CPU, seconds) and write their
  figures and tables into a throw-away folder, so running the tests never rewrites the committed
  ``paper_figures/`` (``make figures`` does that, on purpose).

Both environment variables are set here, at collection time, before nbval starts any kernel:
the kernels inherit this process's environment.
"""

import atexit
import os
import shutil
import tempfile

collect_ignore_glob = ["*.py"]

os.environ.setdefault("PODD_PROFILE", "smoke")
if "PODD_FIGURES_DIR" not in os.environ:
    _figures = tempfile.mkdtemp(prefix="podd-nbval-figures-")
    os.environ["PODD_FIGURES_DIR"] = _figures
    atexit.register(shutil.rmtree, _figures, ignore_errors=True)
