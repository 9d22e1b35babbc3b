"""Every notebook is stored exactly as JupyterLab's save + nbdev's clean write it: open → Ctrl+S → `nbdev_clean` changes
nothing, with or without `make install`'s pre-save hook.

The save is emulated (scripts/nb_normalize.py: what JupyterLab 4 changes, checked against a real JupyterLab in headless
Chromium; numbers through JavaScript, the kernel's metadata, nbformat's writer), the clean is nbdev's own.
A failure means the notebook was written by something else: `python scripts/nb_normalize.py nbs` rewrites it.
`NB_ROUNDTRIP_DIR=/a/folder pytest tests/test_nb_roundtrip.py` checks the notebooks of another folder (e.g. a copy).
"""
import importlib.util, json, os
from pathlib import Path
import pytest
from execnb.nbio import nb2str
from nbdev.clean import clean_jupyter, clean_nb

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location('nb_normalize', ROOT/'scripts'/'nb_normalize.py')
N = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(N)
NB_DIR = Path(os.environ.get('NB_ROUNDTRIP_DIR') or ROOT/'nbs')
NBS = list(N.notebooks([NB_DIR]))

@pytest.fixture(autouse=True)
def _in_repo(monkeypatch): monkeypatch.chdir(ROOT)  # nbdev reads settings.ini from the working directory

def test_finds_the_notebooks(): assert len(NBS) >= 1, f"no notebooks in {NB_DIR}"

@pytest.mark.parametrize('path', NBS, ids=lambda p: p.name)
def test_open_save_then_nbdev_clean_changes_nothing(path):
    text = path.read_text(encoding='utf-8')
    saved = N.jupyterlab_save(text)  # Ctrl+S in JupyterLab, no hook
    nb = json.loads(saved); clean_nb(nb, **N.clean_kwargs(path)); cleaned = nb2str(nb)  # nbdev_clean
    assert cleaned == text, f"{path} changes on open/save/nbdev_clean; run `python scripts/nb_normalize.py {path}`\n" + N.short_diff(text, cleaned, path.name)

@pytest.mark.parametrize('path', NBS, ids=lambda p: p.name)
def test_save_through_nbdevs_hook_changes_nothing(path):
    "`make lab`: the server runs nbdev's clean_jupyter on what the browser sent, then writes it with nbformat."
    text = path.read_text(encoding='utf-8')
    model = {'type': 'notebook', 'content': N.jupyterlab_content(text)}
    clean_jupyter(path=None, model=model)  # path=None: the hook's nbdev_trust (signatures, .last_checked) is skipped
    saved = N.nbformat_text(model['content'])
    assert saved == text, f"{path} changes when saved through nbdev's hook (settings.ini: jupyter_hooks = True?)\n" + N.short_diff(text, saved, path.name)

# What a real JupyterLab 4.6 wrote back for these values (an output's application/json, saved with Ctrl+S)
JS_SEEN = [(1.0, 1), (-0.0, 0), (12300000.0, 12300000), (1e16, 10000000000000000), (1.5e17, 150000000000000000),
           (1e20, 100000000000000000000), (1e21, 1e21), (1.2345e22, 1.2345e22), (1e-07, 1e-07), (1.5e-05, 1.5e-05),
           (5e-324, 5e-324), (1e300, 1e300), (0.1, 0.1), (1/3, 1/3), (float(2**64), 18446744073709552000),
           (2**53 + 1, 9007199254740992), (2**64, 18446744073709552000), (123456789012345678901234, 1.2345678901234569e+23),
           (-(2**63), -9223372036854776000), (True, True), (None, None), (7, 7)]

@pytest.mark.parametrize('x,seen', JS_SEEN, ids=[repr(x) for x, _ in JS_SEEN])
def test_numbers_come_back_as_from_the_browser(x, seen):
    got = N.js_number(x)
    assert (type(got), json.dumps(got)) == (type(seen), json.dumps(seen))

def test_js_number_str_formats_as_javascript():
    assert [N.js_number_str(x) for x in (1e-7, 1.5e-7, 1e21, 123e-20, 0.000001, 1.5, 1e6)] == \
           ['1e-7', '1.5e-7', '1e+21', '1.23e-18', '0.000001', '1.5', '1000000']

def _synthetic():
    return json.dumps({'nbformat': 4, 'nbformat_minor': 5,
        'metadata': {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'},
                     'jupytext': {'text_representation': {'extension': '.py'}, 'main_language': 'python'}, 'custom': {'n': 1.0}},
        'cells': [{'id': 'c1', 'cell_type': 'code', 'execution_count': 3, 'source': ['x = 1.0\n', 'x'],
                   'metadata': {'collapsed': False, 'tags': ['t'], 'n': 2.0},
                   'outputs': [{'output_type': 'stream', 'name': 'stderr', 'text': ['\rbar 0%\rbar 100%\n']},
                               {'output_type': 'stream', 'name': 'stderr', 'text': 'a\nb\n'},
                               {'output_type': 'execute_result', 'execution_count': 3, 'metadata': {'w': 1.0},
                                'data': {'text/plain': '<A at 0x7f00aa>\n1.0', 'application/json': {'v': [1.0, 0.5]}}}]},
                  {'id': 'c2', 'cell_type': 'code', 'execution_count': None, 'source': [''], 'metadata': {}, 'outputs': []}]},
        indent=1, sort_keys=True) + '\n'

def test_jupyterlab_save_as_observed():
    "Details of a real JupyterLab save that the notebooks above may not exercise."
    saved = json.loads(N.jupyterlab_save(_synthetic()))
    c = saved['cells'][0]
    assert c['metadata'] == {'collapsed': False, 'jupyter': {'outputs_hidden': False}, 'tags': ['t'], 'n': 2}
    assert c['execution_count'] == 3 and c['outputs'][2]['execution_count'] == 3
    assert c['outputs'][0]['text'] == ['\r', 'bar 0%\r', 'bar 100%\n']  # stored as sent: not merged, \r not applied
    assert c['outputs'][1]['text'] == ['a\n', 'b\n']
    assert c['outputs'][2]['data']['application/json'] == {'v': [1, 0.5]} and c['outputs'][2]['metadata'] == {'w': 1}
    assert saved['cells'][1]['source'] == []
    md = saved['metadata']
    assert md['kernelspec']['display_name'] == 'Python 3 (ipykernel)' and md['language_info']['name'] == 'python'
    assert md['jupytext'] == {'main_language': 'python'} and md['custom'] == {'n': 1}

def test_normalize_is_idempotent_and_clean():
    once = N.normalize(_synthetic()); nb = json.loads(once)
    assert N.normalize(once) == once
    assert set(nb['metadata']) == {'kernelspec', 'jupytext'} and nb['metadata']['kernelspec']['display_name'] == 'python3'
    c = nb['cells'][0]
    assert c['metadata'] == {} and c['execution_count'] is None and c['outputs'][2]['execution_count'] is None
    assert c['outputs'][2]['data']['text/plain'] == ['<A>\n', '1.0']

def test_check_mode_lists_what_would_change(tmp_path, capsys):
    (tmp_path/'a.ipynb').write_text(_synthetic()); (tmp_path/'b.ipynb').write_text(N.normalize(_synthetic()))
    assert N.main(['--check', str(tmp_path)]) == 1
    assert capsys.readouterr().out.strip() == f"{tmp_path/'a.ipynb'}: would change"
    assert (tmp_path/'a.ipynb').read_text() == _synthetic()  # --check writes nothing
    assert N.main([str(tmp_path)]) == 0 and N.main(['--check', str(tmp_path)]) == 0
