#!/usr/bin/env python
"""Copy plotly.js (from the installed `plotly` package) beside the notebook pages of the docs site.

Saved notebook figures load `plotly.min.js` from the folder of their page (`prlm.evaluate.fig_html`), so the site
works offline and no notebook inlines the 4.6 MB library. `make docs` runs it before `nbdev_docs` (`_quarto.yml`
publishes the copy as a resource); by hand: `python scripts/plotly_js.py [DEST_DIR ...]` (default: nbs/).
"""
import shutil, sys
from pathlib import Path
import plotly

def copy_plotly_js(dest='nbs'):
    "Copy the package's plotly.min.js into `dest`; returns the path written."
    src = Path(plotly.__file__).parent/'package_data'/'plotly.min.js'
    out = Path(dest)/'plotly.min.js'
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, out)
    return out

if __name__ == '__main__':
    for d in sys.argv[1:] or ['nbs']: print(f"wrote {copy_plotly_js(d)}")
