"""Packaging for prlm: metadata comes from settings.ini (nbdev 2 layout), dependencies from requirements.txt."""
from configparser import ConfigParser
from pathlib import Path
import setuptools

here = Path(__file__).parent
cfg = ConfigParser(delimiters=['='])
cfg.read(here/'settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

def _reqs(fname):
    "Requirement lines of `fname`, comments and blanks dropped."
    lines = (here/fname).read_text().splitlines()
    return [l.split('#')[0].strip() for l in lines if l.split('#')[0].strip()]

dev_names = ('nbdev', 'execnb', 'fastcore', 'ghapi', 'fastgit', 'pytest', 'hypothesis', 'jupytext', 'jupyterlab')
all_reqs = _reqs('requirements.txt')
install_requires = [r for r in all_reqs if not r.lower().startswith(dev_names)]
dev_requires = [r for r in all_reqs if r.lower().startswith(dev_names)]

setuptools.setup(
    name=cfg['lib_name'], version=cfg['version'], description=cfg['description'],
    long_description=(here/'README.md').read_text(encoding='utf-8'), long_description_content_type='text/markdown',
    author=cfg['author'], author_email=cfg['author_email'], license='Apache-2.0', url=cfg['git_url'],
    keywords=cfg['keywords'].split(), python_requires=f">={cfg['min_python']}",
    packages=setuptools.find_namespace_packages(include=['prlm', 'prlm.*']), include_package_data=True,
    package_data={'prlm.assets.debian': ['*.gz', '*.json', '*.md'], 'prlm.assets.warm_start': ['*.json', '*.safetensors', '*.md']},
    install_requires=install_requires, extras_require={'dev': dev_requires},
    entry_points={'console_scripts': cfg['console_scripts'].split(), 'nbdev': [f"{cfg['lib_name']}={cfg['lib_name']}._modidx:d"]},
    zip_safe=False,
)
