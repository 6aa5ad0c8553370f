"""IPython kernel config that records every kernel session with tracker.

Use it by pointing IPython at this folder when starting Jupyter (kernels inherit the variable):

    IPYTHONDIR=jupyter_config/ipython jupyter lab

or make it permanent for your own profile with ``tracker enable``. Configs under
``$JUPYTER_CONFIG_DIR`` are not read by the kernel: this file must sit in an IPython profile.
"""

c = get_config()  # noqa: F821 (provided by IPython's config loader)

# `extensions` may still be a lazy value here; append() works on both it and a list.
c.InteractiveShellApp.extensions.append("tracker")
