"""prlm.data: LaMP download against a local HTTP server (incl. resume), the bad-input matrix, round trips, load time."""
import functools, hashlib, http.server, json, os, re, threading, time, warnings
from pathlib import Path
import pytest
from prlm import data as D
from prlm.data import (DataFormatError, DownloadError, EmptyProfileWarning, download_file, export_embedded_lamp, load_embedded,
                       load_lamp, load_lamp_files, summarize, write_lamp_outputs)

# ---------------------------------------------------------------- fixtures: LaMP-like files, a Range-capable server
def q5(i, n=2, **kw):
    "A LaMP-5 question with `n` profile items."
    d = {'id': str(i), 'input': f'Generate a title for the following abstract of a paper: abstract {i}',
         'profile': [{'id': f'{i}{j}', 'abstract': f'abs {j}', 'title': f'title {j}', 'date': f'20{10+j}'} for j in range(n)]}
    d.update(kw); return d

def golds(ids, task='LaMP_5'): return {'task': task, 'golds': [{'id': str(i), 'output': f'gold {i}'} for i in ids]}

def write(p, obj):
    p = Path(p); p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(obj if isinstance(obj, bytes) else json.dumps(obj).encode()); return p

class RangeHandler(http.server.SimpleHTTPRequestHandler):
    "Static files with HTTP Range support (206) unless the server is told to ignore ranges; counts requests."
    def log_message(self, *a): pass
    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get('Range')))
        p = Path(self.directory) / self.path.lstrip('/')
        if not p.is_file(): return self.send_error(404)
        body = p.read_bytes()
        rng = self.headers.get('Range')
        if rng and not self.server.ignore_range:
            start = int(re.match(r'bytes=(\d+)-', rng)[1])
            if start >= len(body):
                self.send_response(416); self.send_header('Content-Range', f'bytes */{len(body)}'); self.end_headers(); return
            self.send_response(206); self.send_header('Content-Range', f'bytes {start}-{len(body)-1}/{len(body)}'); body = body[start:]
        else: self.send_response(200)
        self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)

@pytest.fixture
def server(tmp_path):
    root = tmp_path / 'www'; root.mkdir()
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(RangeHandler, directory=str(root)))
    srv.requests, srv.ignore_range = [], False
    th = threading.Thread(target=srv.serve_forever, daemon=True); th.start()
    yield srv, root, f'http://127.0.0.1:{srv.server_address[1]}'
    srv.shutdown(); srv.server_close()

# ---------------------------------------------------------------- download
def test_load_lamp_downloads_into_cache_and_reuses_it(server, tmp_path):
    srv, www, url = server
    qs = [q5(i) for i in range(3)]
    write(www/'LaMP_5/dev/dev_questions.json', qs); write(www/'LaMP_5/dev/dev_outputs.json', golds(range(3)))
    cache = tmp_path / 'cache'
    ds = load_lamp('LaMP-5', 'dev', root=cache, base_url=url)
    assert ds['id'] == ['0', '1', '2'] and ds['target'] == ['gold 0', 'gold 1', 'gold 2'] and ds['query'][0] == 'abstract 0'
    assert (cache/'LaMP_5/dev/dev_questions.json').read_bytes() == (www/'LaMP_5/dev/dev_questions.json').read_bytes()
    n = len(srv.requests)
    load_lamp('LaMP-5', 'dev', root=cache, base_url=url)  # cached: no new request
    assert len(srv.requests) == n
    assert not list(cache.rglob('*.part')) and not list(cache.rglob('*.tmp'))

def test_time_split_new_lamp2_and_test_split_urls(server, tmp_path):
    srv, www, url = server
    q = {'id': '20', 'input': 'Which tag does this movie relate to among the following tags? tags: [a, b] description: A dog.',
         'profile': [{'id': '201', 'description': 'A cat.', 'tag': 'a', 'date': '2001'}]}
    write(www/'time/LaMP_2/new/test/test_questions.json', [q])
    ds = load_lamp('LaMP-2N', 'test', root=tmp_path/'c', time_based=True, base_url=url)
    assert ds[0]['target'] is None and ds[0]['query'] == 'A dog.' and ds[0]['profile'][0]['output'] == 'a'
    assert [p for p, _ in srv.requests] == ['/time/LaMP_2/new/test/test_questions.json']

def test_download_resumes_partial_file_with_range(server, tmp_path):
    srv, www, url = server
    payload = os.urandom(300_000)
    write(www/'f.bin', payload)
    dest = tmp_path/'d'/'f.bin'; dest.parent.mkdir()
    (dest.parent/'f.bin.part').write_bytes(payload[:123_456])  # an interrupted earlier download
    download_file(f'{url}/f.bin', dest)
    assert dest.read_bytes() == payload
    assert srv.requests[-1] == ('/f.bin', 'bytes=123456-')
    assert not (dest.parent/'f.bin.part').exists()

def test_download_restarts_when_server_ignores_range(server, tmp_path):
    srv, www, url = server
    srv.ignore_range = True
    payload = os.urandom(50_000); write(www/'f.bin', payload)
    dest = tmp_path/'f.bin'; (tmp_path/'f.bin.part').write_bytes(b'garbage that must not survive')
    download_file(f'{url}/f.bin', dest)
    assert dest.read_bytes() == payload

def test_download_stale_part_bigger_than_remote_restarts(server, tmp_path):
    srv, www, url = server
    write(www/'f.bin', b'short')
    dest = tmp_path/'f.bin'; (tmp_path/'f.bin.part').write_bytes(b'x' * 100)
    download_file(f'{url}/f.bin', dest)
    assert dest.read_bytes() == b'short'

def test_download_missing_file_and_offline_errors(server, tmp_path):
    srv, www, url = server
    with pytest.raises(DownloadError, match='HTTP 404'): download_file(f'{url}/nope.json', tmp_path/'nope.json')
    assert not (tmp_path/'nope.json').exists()
    # a closed port stands for "offline": a clear error that says what to do
    srv2 = http.server.HTTPServer(('127.0.0.1', 0), RangeHandler); port = srv2.server_address[1]; srv2.server_close()
    with pytest.raises(DownloadError, match=r'offline.*root=') as e:
        load_lamp('LaMP-4', 'dev', root=tmp_path/'c', base_url=f'http://127.0.0.1:{port}')
    assert 'LaMP_4/dev/dev_questions.json' in str(e.value)
    with pytest.raises(FileNotFoundError, match='download=False'): load_lamp('LaMP-4', 'dev', root=tmp_path/'c', download=False)

def test_truncated_transfer_keeps_part_and_resumes(server, tmp_path):
    "A server that closes the connection early: the .part stays, the next call finishes it."
    srv, www, url = server
    payload = os.urandom(200_000); write(www/'f.bin', payload)
    class Cut(RangeHandler):
        def do_GET(self):
            if getattr(self.server, 'cut', 0) == 0:
                self.server.cut = 1
                self.send_response(200); self.send_header('Content-Length', str(len(payload))); self.end_headers()
                self.wfile.write(payload[:70_000]); self.wfile.flush(); self.close_connection = True; return
            super().do_GET()
    s2 = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Cut, directory=str(www)))
    s2.requests, s2.ignore_range = [], False
    threading.Thread(target=s2.serve_forever, daemon=True).start()
    try:
        dest = tmp_path/'f.bin'; u2 = f'http://127.0.0.1:{s2.server_address[1]}/f.bin'
        with pytest.raises(DownloadError, match='resume'): download_file(u2, dest)
        assert not dest.exists() and (tmp_path/'f.bin.part').stat().st_size == 70_000
        download_file(u2, dest)
        assert dest.read_bytes() == payload and s2.requests[-1][1] == 'bytes=70000-'
    finally: s2.shutdown(); s2.server_close()

# ---------------------------------------------------------------- bad-input matrix
GOOD = [q5(1), q5(2)]
def _bytes(obj): return json.dumps(obj).encode()

BAD = {  # name: (questions bytes, outputs obj or None, expected record, expected field, message fragment)
    'truncated json': (_bytes(GOOD)[:-40], None, '2', '(JSON syntax)', 'truncated JSON'),
    'malformed json': (_bytes(GOOD).replace(b'"input"', b'"input" ,', 1), None, '1', '(JSON syntax)', 'malformed'),
    'not a list': (_bytes({'id': 1}), None, None, None, 'JSON list'),
    'missing input': (_bytes([q5(1), {k: v for k, v in q5(2).items() if k != 'input'}]), None, '2', 'input', 'missing field'),
    'missing id': (_bytes([q5(1), {k: v for k, v in q5(2).items() if k != 'id'}]), None, '#1', 'id', 'missing field'),
    'missing profile': (_bytes([{k: v for k, v in q5(1).items() if k != 'profile'}]), None, '1', 'profile', 'missing field'),
    'profile not a list': (_bytes([q5(1, profile='x')]), None, '1', 'profile', 'expected a list'),
    'missing profile field': (_bytes([q5(1), q5(2, profile=[{'id': 'a', 'abstract': 'x', 'date': '2000'}])]), None, '2', 'profile[0].title', 'missing field'),
    'profile field wrong type': (_bytes([q5(1, profile=[{'id': 'a', 'abstract': ['x'], 'title': 't'}])]), None, '1', 'profile[0].abstract', 'expected a string'),
    'input wrong type': (_bytes([q5(1, input=3)]), None, '1', 'input', 'expected a string'),
    'duplicate id': (_bytes([q5(1), q5(2), q5(1)]), None, '1', 'id', 'duplicate id'),
    'question without gold': (_bytes(GOOD), golds([1]), '2', 'output', 'has no gold'),
    'gold without question': (_bytes(GOOD), golds([1, 2, 3]), '3', 'id', 'gold without a question'),
    'duplicate gold': (_bytes(GOOD), golds([1, 2, 2]), '2', 'id', 'duplicate id'),
    'gold missing output': (_bytes(GOOD), {'task': 'LaMP_5', 'golds': [{'id': '1', 'output': 'a'}, {'id': '2'}]}, '2', 'output', 'missing field'),
    'non-utf8 in profile': (_bytes(GOOD).replace(b'abs 1', b'abs \xff1', 1), None, '1', 'profile[1].abstract', 'invalid UTF-8'),
    'non-utf8 in input': (_bytes(GOOD).replace(b'abstract 2', b'abstract \xe92', 1), None, '2', 'input', 'invalid UTF-8'),
    'gold output null': (_bytes(GOOD), {'task': 'LaMP_5', 'golds': [{'id': '1', 'output': 'a'}, {'id': '2', 'output': None}]}, '2', 'output', 'got null'),
    'gold output a list': (_bytes(GOOD), {'task': 'LaMP_5', 'golds': [{'id': '1', 'output': ['a']}, {'id': '2', 'output': 'b'}]}, '1', 'output', 'got list'),
    'outputs of another task': (_bytes(GOOD), golds([1, 2], task='LaMP_4'), None, 'task', "outputs are for task 'LaMP_4'"),
    'outputs of an unknown task': (_bytes(GOOD), golds([1, 2], task='LaMP_99'), None, 'task', "outputs are for task 'LaMP_99'"),
    'no questions': (_bytes([]), golds([]), None, None, 'no questions'),
}

@pytest.mark.parametrize('case', list(BAD))
def test_bad_input_matrix(case, tmp_path):
    qbytes, outs, rid, field, frag = BAD[case]
    qp = write(tmp_path/'dev_questions.json', qbytes)
    op = write(tmp_path/'dev_outputs.json', outs) if outs is not None else None
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(DataFormatError) as e: load_lamp_files(qp, op, task='LaMP-5')
    err = e.value
    assert frag in str(err), str(err)
    assert (err.record_id, err.field) == (rid, field), str(err)
    assert err.path in (str(qp), str(op))
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before  # input files untouched

def test_numeric_gold_is_text_and_outputs_without_task_are_fine(tmp_path):
    qp = write(tmp_path/'q.json', GOOD)
    ds = load_lamp_files(qp, write(tmp_path/'o.json', [{'id': '1', 'output': 4}, {'id': '2', 'output': 'b'}]), task='LaMP-5')
    assert ds['target'] == ['4', 'b']

def test_non_utf8_in_outputs_names_gold(tmp_path):
    qp = write(tmp_path/'q.json', GOOD)
    op = write(tmp_path/'o.json', _bytes(golds([1, 2])).replace(b'gold 2', b'gold \x802'))
    with pytest.raises(DataFormatError) as e: load_lamp_files(qp, op)
    assert (e.value.path, e.value.record_id, e.value.field) == (str(op), '2', 'output')

def test_empty_profile_is_a_warning_not_an_error(tmp_path):
    qp = write(tmp_path/'q.json', [q5(1), q5(2, n=0)])
    with pytest.warns(EmptyProfileWarning, match=r"1 question\(s\) with an empty profile.*'2'"):
        ds = load_lamp_files(qp)
    assert [len(p) for p in ds['profile']] == [2, 0] and len(ds) == 2

def test_unknown_task_needs_task_argument(tmp_path):
    qp = write(tmp_path/'q.json', [q5(1, input='Something else entirely')])
    with pytest.raises(DataFormatError, match="pass task="): load_lamp_files(qp)
    assert load_lamp_files(qp, task='LaMP-5')[0]['query'] == 'Something else entirely'

@pytest.mark.parametrize('task,profile,text,output', [
    ('LaMP-1', {'id': 1, 'title': 'T', 'abstract': 'A', 'date': 2000}, 'T A', ''),
    ('LaMP-2', {'id': 1, 'title': 'T', 'text': 'X', 'category': 'c'}, 'T X', 'c'),
    ('LaMP-2N', {'id': 1, 'description': 'D', 'tag': 'g'}, 'D', 'g'),
    ('LaMP-3', {'id': 1, 'text': 'R', 'score': 4}, 'R', '4'),
    ('LaMP-4', {'id': 1, 'text': 'X', 'title': 'H'}, 'X', 'H'),
    ('LaMP-5', {'id': 1, 'abstract': 'A', 'title': 'T'}, 'A', 'T'),
    ('LaMP-6', {'id': 1, 'text': 'E', 'title': 'S'}, 'E', 'S'),
    ('LaMP-7', {'id': 1, 'text': 'W'}, 'W', '')])
def test_every_task_profile_mapping(task, profile, text, output, tmp_path):
    spec = D.get_task(task)
    qp = write(tmp_path/'q.json', [{'id': 'q', 'input': spec.input_prefix + ' x: "a" "b" "c" article: y', 'profile': [profile]}])
    r = load_lamp_files(qp)[0]  # the task is recognised from the input
    assert r['task'] == task and (r['profile'][0]['text'], r['profile'][0]['output']) == (text, output)

# ---------------------------------------------------------------- round trips
def test_write_outputs_round_trip(tmp_path):
    qp = write(tmp_path/'q.json', GOOD)
    op = write_lamp_outputs({'1': 'pred one', '2': 'pred ü'}, tmp_path/'preds.json', 'LaMP-5')
    assert json.loads(op.read_text()) == {'task': 'LaMP_5', 'golds': [{'id': '1', 'output': 'pred one'}, {'id': '2', 'output': 'pred ü'}]}
    assert load_lamp_files(qp, op)['target'] == ['pred one', 'pred ü']
    with pytest.raises(TypeError): write_lamp_outputs({'1': None}, tmp_path/'x.json', 'LaMP-5')

@pytest.mark.parametrize('split', ['time', 'user'])
def test_embedded_exports_to_lamp_format_and_back(split, tmp_path):
    paths = export_embedded_lamp(tmp_path, split=split)
    for sub, (qp, op) in paths.items():
        assert load_lamp_files(qp, op).to_list() == load_embedded(split, sub).to_list()

# ---------------------------------------------------------------- embedded dataset
def test_embedded_load_time_and_counts():
    D._load_embedded.cache_clear(); D._embedded_users.cache_clear()
    t0 = time.perf_counter(); tr = load_embedded('time', 'train'); dv = load_embedded('time', 'dev'); dt = time.perf_counter() - t0
    assert summarize(dv)['users'] == len(dv) >= 250 and len(tr) == 3 * len(dv)
    assert all(p for p in tr['profile'])

def test_embedded_user_split_is_disjoint_and_deterministic():
    tr, dv = load_embedded('user', 'train'), load_embedded('user', 'dev')
    assert not set(tr['user_id']) & set(dv['user_id'])
    assert 0.1 < len(set(dv['user_id'])) / (len(set(dv['user_id'])) + len(set(tr['user_id']))) < 0.3
    assert D.embedded_records('user', 'dev') == D.embedded_records('user', 'dev')

def test_embedded_file_is_small_and_name_free():
    p = D._embedded_path()
    assert p.stat().st_size < 3_000_000
    import gzip
    users = [json.loads(l) for l in gzip.decompress(p.read_bytes()).decode().splitlines()]
    txt = '\n'.join(it['text'] + '\n' + it['output'] for u in users for it in u['items'])
    assert not re.search(r'[\w.+-]+@[\w-]+\.[\w.-]+', txt)  # no e-mail addresses (maintainers are hashed, descriptions scrubbed)
    assert (p.parent/'DATACARD.md').exists()

def test_bad_split_names():
    with pytest.raises(ValueError): load_embedded('random')
    with pytest.raises(ValueError): load_embedded('time', 'validation')
