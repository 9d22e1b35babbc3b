"""End-to-end tests of `prlm run` on tiny random models and a handful of embedded queries.

- invalid configs fail fast (before any model loads), naming the key path, with exit status 2;
- a run killed with SIGKILL in the middle of GRPO resumes: finished stages are skipped, GRPO continues from its
  checkpoint, the run completes and writes a self-contained report with the plotly figures;
- a second `prlm run` on a finished run does nothing; `--overwrite evaluate` re-runs evaluate + report only,
  and generations come from the cache.
"""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, yaml

ROOT = Path(__file__).resolve().parents[1]
PRLM = [str(Path(sys.executable).parent/'prlm')]  # the console script of this venv
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1',
       'TOKENIZERS_PARALLELISM': 'false', 'PYTHONUNBUFFERED': '1'}

def tiny_config(tmp_path, **changes):
    "configs/tiny.yaml with `changes` merged in (one level deep), written into tmp_path."
    cfg = yaml.safe_load((ROOT/'configs/tiny.yaml').read_text())
    cfg['run_dir'] = str(tmp_path/'run')
    for k, v in changes.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict): cfg[k].update(v)
        else: cfg[k] = v
    p = tmp_path/'config.yaml'; p.write_text(yaml.safe_dump(cfg))
    return p

def prlm(*args, timeout=600):
    return subprocess.run(PRLM + [str(a) for a in args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)

@pytest.mark.parametrize('changes,key', [
    ({'grpo': {'learning_rate': 'fast'}}, 'grpo.learning_rate: expected float'),
    ({'grpo': {'max_stepz': 3}}, 'grpo.max_stepz: unknown key'),
    ({'retrieval': {'k': 'four'}}, 'retrieval.k: expected int'),
    ({'retrieval': {'retriever': 'bm26'}}, 'retrieval.retriever'),
    ({'eval': {'systems': ['prlm', 'gpt5']}}, 'eval.systems.1: unknown system'),
    ({'rewards': {'rouge': 1.0, 'style': 1.0}}, 'rewards.style: unknown reward'),
    ({'data': {'n_test': 0}}, 'data.n_test'),
    ({'colour': 'red'}, 'colour: unknown key'),
])
def test_invalid_config_fails_fast(tmp_path, changes, key):
    from prlm.pipeline import load_config, ConfigError
    p = tiny_config(tmp_path, **changes)
    with pytest.raises(ConfigError, match=key.replace('.', r'\.')): load_config(p)
    assert not (tmp_path/'run').exists()  # nothing was created, no model was touched

def test_cli_invalid_config_exit_code(tmp_path):
    t0 = time.time()
    r = prlm('run', tiny_config(tmp_path, grpo={'learning_rate': 'fast'}))
    assert r.returncode == 2, r.stderr
    assert 'grpo.learning_rate: expected float' in r.stderr
    assert not (tmp_path/'run').exists()
    assert time.time() - t0 < 60

@pytest.mark.parametrize('command', ['validate', 'status'])
def test_validate_and_status_load_no_ml_library(tmp_path, command):
    "`prlm validate` / `prlm status` read a config without torch, transformers, TRL or peft (seconds of start-up saved)."
    from prlm.models import embedded_tokenizer_path
    embedded_tokenizer_path()  # built once (that needs transformers); the checks then read its files
    code = (f"import sys; from prlm.cli import main; rc = main(['{command}', {str(tiny_config(tmp_path))!r}]); "
            "print(rc, [m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules])")
    r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.stdout.strip().splitlines()[-1] == '0 []', r.stdout + r.stderr

def test_budget_tokenizer_counts_like_transformers():
    "The budget check's tokenizer (no transformers) gives the numbers transformers' tokenizer gives."
    from transformers import AutoTokenizer
    from prlm.models import embedded_tokenizer_path
    from prlm.pipeline import BudgetTokenizer
    from prlm.prompts import budget_check, build_prompt, min_budget
    from prlm.data import load_embedded
    bt, at = BudgetTokenizer(embedded_tokenizer_path()), AutoTokenizer.from_pretrained(embedded_tokenizer_path())
    for template in ('prlm', 'rag'):
        for task in (None, 'debian', 'LaMP-4'):
            assert min_budget(bt, template, 4, task) == min_budget(at, template, 4, task), (template, task)
            for m in (96, 200, 352): assert budget_check(bt, template, m, 4, task) == budget_check(at, template, m, 4, task)
    ds = load_embedded('time', 'dev').select(range(8))
    for ex in ds:
        ex = dict(ex, retrieved=[dict(index=i, score=0.) for i in range(min(4, len(ex['profile'])))])
        assert build_prompt(ex, 'prlm', bt, 200, 4, return_info=True) == build_prompt(ex, 'prlm', at, 200, 4, return_info=True)

def test_grpo_section_passes_trl_arguments_through(tmp_path):
    "Any `trl.GRPOConfig` argument can be set in the grpo section; it reaches the stage config, typed."
    from prlm.pipeline import load_config, grpo_config, RunDir
    cfg = load_config(tiny_config(tmp_path, grpo={'max_grad_norm': '0.5', 'lr_scheduler_type': 'linear'}))
    g = grpo_config(cfg, RunDir(tmp_path/'run'))
    assert (g.max_grad_norm, g.lr_scheduler_type, g.max_steps, g.model.endswith('tiny_policy')) == (0.5, 'linear', 2, True)

def _wait_for(pred, proc, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred(): return True
        if proc.poll() is not None: return False
        time.sleep(0.05)
    return False

def test_kill_and_resume_end_to_end(tmp_path):
    cfgp = tiny_config(tmp_path)
    run = tmp_path/'run'
    # 1. start a run and SIGKILL it as soon as GRPO has written its first checkpoint
    proc = subprocess.Popen(PRLM + ['run', str(cfgp)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ckpt = lambda: any((run/'grpo').glob('checkpoint-*/trainer_state.json'))
    hit = _wait_for(ckpt, proc)
    os.kill(proc.pid, signal.SIGKILL); out1 = proc.communicate()[0]
    assert hit, f"the run ended before GRPO checkpointed:\n{out1[-3000:]}"
    assert proc.returncode == -signal.SIGKILL
    done = {s: json.loads((run/f'stages/{s}.json').read_text()) for s in ('data', 'retrieve', 'pairs', 'rm')}
    assert not (run/'stages/grpo.json').exists() and (run/'stages/grpo.started').exists()
    # 2. the same command resumes: finished stages skipped, GRPO resumes from the checkpoint, the run completes
    r = prlm('run', cfgp)
    log = f"\n--- killed run:\n{out1[-2000:]}\n--- resumed run:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert r.returncode == 0, log
    for s in done:
        assert f'{s}: done' in r.stdout and 'skipped' in r.stdout, log
        assert json.loads((run/f'stages/{s}.json').read_text())['nonce'] == done[s]['nonce'], log  # not re-run
    assert 'grpo: resuming an interrupted run' in r.stdout, log
    tr = json.loads((run/'grpo/train_result.json').read_text())
    assert tr['resumed_from'] and tr['resumed_from'].startswith('checkpoint-'), (tr, log)
    assert tr['global_step'] == yaml.safe_load(cfgp.read_text())['grpo']['max_steps'], (tr, log)
    # 3. artifacts: report with inline plotly, results.json with the main table, LaMP-format predictions
    html = (run/'report.html').read_text()
    assert html.count('plotly.js v') >= 1 and len(html) > 3_000_000  # plotly.js inlined (once)...
    assert html.count('Plotly.newPlot(') == 5  # ...and 5 figures: personalization, k (ROUGE-L, ROUGE-1), retriever, GRPO rewards
    assert 'src="http' not in html  # self-contained: no script or image from the network
    res = json.loads((run/'results.json').read_text())
    systems = yaml.safe_load(cfgp.read_text())['eval']['systems']
    assert [r['system'] for r in res['main_table']] == systems
    assert {d['baseline'] for d in res['deltas']} == set(systems) - {'prlm'}
    assert res['reward_model'] and res['grpo']['log_history'] and res['versions']['trl']
    for s in systems:
        pred = json.loads((run/f'eval/predictions/{s}.json').read_text())
        assert pred['task'] and len(pred['golds']) == res['main_table'][0]['n']
    assert 'report:' in r.stdout and str(run/'report.html') in r.stdout
    # 4. a finished run is a no-op; --overwrite evaluate re-runs only evaluate + report, all from the cache
    r2 = prlm('run', cfgp, '--overwrite', 'evaluate')
    log2 = r2.stdout[-3000:] + r2.stderr[-3000:]
    assert r2.returncode == 0, log2
    assert 'grpo: done' in r2.stdout and 'evaluate: forced' in r2.stdout and 'report: config or upstream changed' in r2.stdout, log2
    assert ' 0 to generate' in r2.stdout and not any(f' {n} to generate' in r2.stdout for n in range(1, 100)), log2
    # 5. the headroom (what the profile could add) is in results.json, and the oracle script reads the finished run
    h = json.loads((run/'results.json').read_text())['headroom']
    assert h['n'] > 0 and 0 <= h['own'] <= 1 and 0 <= h['other'] <= 1 and h['lo'] <= h['delta'] <= h['hi'], h
    o = subprocess.run([sys.executable, 'scripts/headroom_oracle.py', str(run)], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert o.returncode == 0 and o.stdout.count('oracle own - other') == 2, o.stdout + o.stderr

def test_rouge_flat_steps_are_reported():
    "GRPO steps whose completions all got the same ROUGE (no answer reached) are counted and flagged, though the format reward varied."
    from prlm.report import _reward_summary, _health_problems
    rows = [{'reward': -1.2, 'frac_reward_zero_std': 0.0, 'rewards/rouge/std': 0.0}] * 3 + [{'reward': 0.3, 'frac_reward_zero_std': 0.0, 'rewards/rouge/std': 0.4}]
    s = _reward_summary(rows)
    assert s['rouge_flat_share'] == 0.75 and s['zero_signal_share'] == 0.0
    probs = _health_problems({'grpo': {'summary': s}})
    assert any('75% of steps ROUGE scored every completion the same' in p for p in probs), probs
    assert not any('ROUGE scored' in p for p in _health_problems({'grpo': {'summary': dict(s, rouge_flat_share=0.1)}}))


NOTEBOOKS = ('10_config', '10b_report', '10c_stages', '10d_pipeline')  # the pipeline notebook, split by role

def test_public_names_still_importable_from_prlm_pipeline():
    "Every name `prlm.pipeline` exported before the split still imports from it, as the object its new module defines."
    import prlm.pipeline as pl, prlm.config, prlm.report, prlm.stages
    old = ['RUN_MARKER', 'STAGES', 'STAGE_DEPS', 'STAGE_DIRS', 'STAGE_ARTIFACTS', 'SMOKE_N', 'FEW_STEPS',
           'GRPO_LEGEND', 'ENV_ERRORS', 'STAGE_FUNCS', 'RESUMABLE', 'DataConfig', 'RetrievalConfig', 'PolicyConfig',
           'RewardModelConfig', 'ExtraTest', 'EvalConfig', 'RunConfig', 'is_run_dir', 'run_dir_problem',
           'ConfigError', 'check_config', 'set_key', 'load_config', 'BudgetTokenizer', 'policy_tokenizer',
           'check_budget', 'check_environment', 'preflight', 'RunDir', 'stage_problem', 'policy_path',
           'encoder_path', 'fingerprint_parts', 'fingerprint', 'part_digests', 'set_threads', 'release_memory',
           'stage_data', 'stage_retrieve', 'stage_pairs', 'stage_rm', 'grpo_config', 'stage_grpo', 'stage_evaluate',
           'package_versions', 'read_log_history', 'fig_rewards', 'extra_rows', 'warm_start_info', 'build_results',
           'verdict_word', 'headroom_text', 'verdict', 'render_report', 'report_examples', 'stage_report',
           'stale_reasons', 'stale_stages', 'env_error', 'run_stage', 'prepare_run', 'summary', 'run_pipeline']
    assert [n for n in old if not hasattr(pl, n)] == []
    for m in (prlm.config, prlm.report, prlm.stages):
        assert [n for n in m.__all__ if getattr(pl, n, None) is not getattr(m, n)] == [], m.__name__
    assert pl.STAGE_FUNCS['data'] is prlm.stages.stage_data and pl.STAGE_FUNCS['report'] is prlm.report.stage_report

def test_pipeline_notebooks_stay_small():
    for name in NOTEBOOKS:
        p = ROOT/'nbs'/f'{name}.ipynb'
        assert p.stat().st_size < 150_000, f"{p.name}: {p.stat().st_size} bytes, split it or slim its outputs"
