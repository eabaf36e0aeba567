"""Resources load their backends' libraries when used, not when imported: the lexical search
resource of a run on the embedded index never imports the Elasticsearch client, nor one on a
cluster tantivy; no resource imports torch or a model runtime."""

import subprocess
import sys

from pipeline.paths import PROJECT_ROOT

BACKENDS = ("elasticsearch", "tantivy", "torch", "sentence_transformers", "transformers",
            "llama_cpp")


def test_importing_the_resources_imports_no_backend() -> None:
    probe = (f"import sys, resources; print(' '.join(m for m in {BACKENDS!r} "
             "if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, check=True,
                            capture_output=True, text=True).stdout.split()
    assert loaded == []
