"""`lcchat pull` and `lcchat models` as a person runs them, against a local Hub: the real
huggingface_hub does the talking (HF_ENDPOINT), the real `lcchat` the rest."""

from __future__ import annotations

import hashlib
import signal
import socket
import subprocess
from pathlib import Path

from lcchat.config.schema import ModelSettings
from lcchat.engine import gguf_info
from lcchat.hub import fit
from lcchat.hub.remote import RemoteFile
from tests.commandline import lcchat_cmd
from tests.hub.conftest import REPO, write_profile

TIMEOUT = 120


def lcchat(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*lcchat_cmd(), *args], env=env, input=stdin, capture_output=True, text=True,
                          timeout=TIMEOUT, stdin=None if stdin is not None else subprocess.DEVNULL)


def blobs(cache: Path) -> list[Path]:
    folder = cache / f"models--{REPO.replace('/', '--')}" / "blobs"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_a_fresh_pull_lands_in_the_hub_cache_and_the_profile_finds_it(hub, env, hf_cache, lcchat_home, quants):
    hub.add(REPO, {"tiny-F32.gguf": quants["F32"], "README.md": b"# tiny\n"})
    write_profile(lcchat_home)

    r = lcchat(env, "pull", "tiny")
    assert r.returncode == 0, r.stderr
    path = Path(r.stdout.strip())
    assert path.read_bytes() == quants["F32"]
    # huggingface_hub's layout: the snapshot entry links to a blob named by the sha256
    sha = hashlib.sha256(quants["F32"]).hexdigest()
    assert path.is_symlink() and path.resolve().name == sha
    assert path.parent.name == hub.repos[REPO].commit
    assert "sha256 and GGUF header checked" in r.stderr

    listed = lcchat(env, "models")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "tiny-F32.gguf" in line).split()
    assert (row[0], row[3]) == ("F32", "tiny")  # the quant type, and the profile that uses it

    # -p NAME now runs with no path anywhere: pipe mode answers from the pulled file
    asked = len(hub.log)
    chat = lcchat(env, "-p", "tiny", "hello there")
    assert chat.returncode == 0, chat.stderr
    assert len(hub.log) == asked  # finding the file needs no network


def test_a_pull_interrupted_half_way_resumes_where_it_stopped(hub, env, hf_cache, big_model):
    data = big_model
    sha = hashlib.sha256(data).hexdigest()
    hub.add(REPO, {"big-F32.gguf": data})
    half = len(data) // 2
    hub.stall_at[sha] = half

    child = subprocess.Popen([*lcchat_cmd(), "pull", f"hf://{REPO}"], env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert hub.stalled.wait(TIMEOUT), "the transfer never reached half-way"
        child.send_signal(signal.SIGINT)  # Ctrl+C
        out, err = child.communicate(timeout=TIMEOUT)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert "Traceback" not in err
    assert f"`lcchat pull hf://{REPO}` resumes" in err
    partial = [p for p in blobs(hf_cache) if p.name.endswith(".incomplete")]
    assert len(partial) == 1
    kept = partial[0].stat().st_size  # what had reached the disk (huggingface_hub writes 10 MB chunks)
    assert 0 < kept <= half
    assert partial[0].read_bytes() == data[:kept]

    hub.stall_at.clear()
    hub.release()
    again = lcchat(env, "pull", f"hf://{REPO}")
    assert again.returncode == 0, again.stderr
    assert Path(again.stdout.strip()).read_bytes() == data
    first, second = hub.requests("cdn", "GET")[-2:]
    assert first.range is None and first.sent == half
    assert second.range == f"bytes={kept}-" and second.sent == len(data) - kept  # only the rest came again
    assert "resumed after" in again.stderr
    assert not [p for p in blobs(hf_cache) if p.name.endswith(".incomplete")]


def test_bytes_that_do_not_match_the_advertised_sha256_are_deleted(hub, env, hf_cache, quants):
    hub.add(REPO, {"tiny-F32.gguf": quants["F32"]}, advertise={"tiny-F32.gguf": "ab" * 32})
    r = lcchat(env, "pull", f"hf://{REPO}/tiny-F32.gguf")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert "sha256" in lines[-1] and "deleted" in lines[-1] and f"lcchat pull hf://{REPO}/tiny-F32.gguf" in lines[-1]
    assert blobs(hf_cache) == []  # neither the partial file nor a blob is left
    assert "no models downloaded" in lcchat(env, "models").stdout


def test_a_file_that_is_not_gguf_is_refused_and_deleted(hub, env, hf_cache):
    hub.add(REPO, {"broken.gguf": b"GGUF" + b"\xff" * 4000})
    r = lcchat(env, "pull", f"hf://{REPO}/broken.gguf")
    assert r.returncode == 1
    assert "not a usable GGUF file" in r.stderr and "deleted" in r.stderr
    assert "Traceback" not in r.stderr
    assert blobs(hf_cache) == []


def needs(quants: dict[str, bytes], name: str, settings: ModelSettings) -> int:
    """RAM the estimate gives a quant (the test's own reading of the same numbers)."""
    data = quants[name]
    header = gguf_info.read_gguf_prefix(data, len(data), name)
    return fit.estimate(header, RemoteFile(name, len(data), None), settings, available_ram=None).ram


def test_a_ram_limit_rules_out_the_big_quants(hub, env, hf_cache, lcchat_home, quants):
    hub.add(REPO, {f"tiny-{name}.gguf": data for name, data in quants.items()})
    write_profile(lcchat_home)
    settings = ModelSettings(n_ctx=512)
    limit = (needs(quants, "Q4_0", settings) + needs(quants, "Q8_0", settings)) // 2

    r = lcchat(env, "pull", "tiny", "--ram", str(limit))
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).name == "tiny-Q4_0.gguf"
    table = r.stderr.splitlines()
    chosen = next(line for line in table if line.startswith(" → "))
    assert chosen.split()[1] == "Q4_0" and "the best quality that fits" in chosen
    q8 = next(line for line in table if line.split()[:1] == ["Q8_0"])
    assert "would not fit" in q8  # the runner-up above it, and why it lost
    assert [p.name for p in blobs(hf_cache)] == [hashlib.sha256(quants["Q4_0"]).hexdigest()]
    # only the header of one file was read to plan, not the big files
    assert sum(e.sent for e in hub.requests("cdn", "GET")) < len(quants["F32"]) + len(quants["Q4_0"])


def test_with_memory_for_nothing_it_says_what_would_fit(hub, env, hf_cache, lcchat_home, quants):
    hub.add(REPO, {f"tiny-{name}.gguf": data for name, data in quants.items()})
    write_profile(lcchat_home)
    small_ctx = needs(quants, "Q4_0", ModelSettings(n_ctx=512))
    r = lcchat(env, "pull", "tiny", "-c", "4096", "--ram", str(small_ctx + 1024))
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"lcchat pull: nothing in hf://{REPO} fits: the smallest, Q4_0")
    assert "it would fit with -c " in last and "--quant TYPE" in last
    assert blobs(hf_cache) == []

    forced = lcchat(env, "pull", "tiny", "--quant", "f16", "--ram", "1M")
    assert forced.returncode == 0, forced.stderr
    assert Path(forced.stdout.strip()).name == "tiny-F16.gguf"


def test_the_server_down_is_one_clear_line(env, hf_cache):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    r = lcchat({**env, "HF_ENDPOINT": f"http://127.0.0.1:{port}"}, "pull", f"hf://{REPO}")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"lcchat pull: cannot list hf://{REPO}: http://127.0.0.1:{port} cannot be reached")


def test_pipe_mode_never_downloads(hub, env, hf_cache, lcchat_home, quants):
    hub.add(REPO, {"tiny-F32.gguf": quants["F32"]})
    write_profile(lcchat_home)
    # "y" on stdin is a script's input, not an answer: nothing may read it as one
    for args, stdin in ((["-p", "tiny"], "y\n"), (["-p", "tiny", "hello"], None), (["-p", "tiny", "y"], "y\n")):
        r = lcchat(env, *args, stdin=stdin)
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip() == ("lcchat: profile 'tiny' uses a model from hf://test/tiny-GGUF that is not "
                                    "downloaded yet; download it with: lcchat pull tiny")
    assert hub.log == []  # not even a listing
    assert not hf_cache.exists()


def test_offline_mode_is_named(hub, env, quants):
    hub.add(REPO, {"tiny-F32.gguf": quants["F32"]})
    r = lcchat({**env, "HF_HUB_OFFLINE": "1"}, "pull", f"hf://{REPO}")
    assert r.returncode == 1
    assert "offline mode is on (HF_HUB_OFFLINE)" in r.stderr
    assert hub.log == []


def test_models_rm_deletes_the_file_and_its_blob(hub, env, hf_cache, lcchat_home, quants):
    hub.add(REPO, {"tiny-F32.gguf": quants["F32"], "tiny-Q8_0.gguf": quants["Q8_0"]})
    write_profile(lcchat_home)
    for name in ("tiny-F32.gguf", "tiny-Q8_0.gguf"):
        assert lcchat(env, "pull", f"hf://{REPO}/{name}").returncode == 0
    r = lcchat(env, "models", "rm", f"hf://{REPO}/tiny-F32.gguf")
    assert r.returncode == 0, r.stderr
    assert f"deleted hf://{REPO}/tiny-F32.gguf" in r.stdout
    assert [p.name for p in blobs(hf_cache)] == [hashlib.sha256(quants["Q8_0"]).hexdigest()]
    listed = lcchat(env, "models").stdout
    assert "tiny-F32.gguf" not in listed and "tiny-Q8_0.gguf" in listed

    assert lcchat(env, "models", "rm", "tiny").returncode == 0  # a profile's files
    assert blobs(hf_cache) == []
    again = lcchat(env, "models", "rm", "tiny")
    assert again.returncode == 2 and "nothing downloaded matches" in again.stderr


def test_unknown_repository_and_file_are_bad_input(hub, env, quants):
    hub.add(REPO, {"tiny-F32.gguf": quants["F32"]})
    r = lcchat(env, "pull", "hf://test/missing")
    assert r.returncode == 2 and "no such repository" in r.stderr
    r = lcchat(env, "pull", f"hf://{REPO}/nope.gguf")
    assert r.returncode == 2 and "has no file 'nope.gguf'" in r.stderr and "tiny-F32.gguf" in r.stderr
    r = lcchat(env, "pull", "default")
    assert r.returncode == 2 and "names no download source" in r.stderr


def test_the_token_goes_to_the_hub_and_never_to_the_cdn(hub, env, quants):
    hub.add(REPO, {"tiny-F32.gguf": quants["F32"]})
    r = lcchat({**env, "HF_TOKEN": "hf_secret_test_token"}, "pull", f"hf://{REPO}")
    assert r.returncode == 0, r.stderr
    api = [e for e in hub.requests("hub") if e.path.startswith(f"/api/models/{REPO}") or "/resolve/" in e.path]
    assert api and all(e.authorization == "Bearer hf_secret_test_token" for e in api)
    assert hub.requests("cdn") and all(e.authorization is None for e in hub.requests("cdn"))


def test_names_and_etags_from_a_hostile_server_stay_harmless(hub, env, hf_cache, quants):
    hub.add(REPO, {"evil\x1b]0;pwned\x07\x1b[2J.gguf": quants["F32"], "tiny-F32.gguf": quants["F32"]},
            etags={"tiny-F32.gguf": "../../../outside"})
    r = lcchat(env, "pull", f"hf://{REPO}")
    assert r.returncode == 1
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr  # the escape-laden name was never listed
    assert r.stderr.strip().splitlines()[-1].endswith("the server gave no usable ETag for it")
    assert not (hf_cache.parent / "outside").exists() and not list(hf_cache.parent.glob("outside*"))


def test_without_a_terminal_progress_is_a_line_per_ten_percent(hub, env, big_model):
    hub.add(REPO, {"big-F32.gguf": big_model})
    r = lcchat(env, "pull", f"hf://{REPO}")
    assert r.returncode == 0, r.stderr
    steps = [int(line.split("%")[0]) for line in r.stderr.splitlines() if line.startswith("  ") and "% (" in line]
    assert steps == list(range(10, 101, 10)), r.stderr
    assert "\r" not in r.stderr
