"Shared pytest setup: nothing may touch a model hub at test time, and the `slow` marker is registered."
import os

for var in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE', 'HF_DATASETS_OFFLINE'): os.environ.setdefault(var, '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: takes more than a few seconds (still run by `make test`)')
