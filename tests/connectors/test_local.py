import fnmatch

import pytest

import connectors.local as local
from connectors.base import DEFAULT_EXCLUDE, SourceError, matches_glob, source_from_config
from connectors.local import LocalSource, LocalSourceConfig

pytestmark = pytest.mark.unit


def _source(root, **kw):
    return LocalSource(LocalSourceConfig(root=str(root), **kw))


def _paths(source):
    return sorted(r.path for r in source.list().refs)


def test_lists_recursively_and_skips_hidden_and_temporary_files(tmp_path):
    (tmp_path / "sub" / "deep").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    for rel in [
        "a.txt",
        "sub/b.md",
        "sub/deep/c.pdf",
        ".hidden.txt",
        ".git/config",
        "~$lock.docx",
        "draft.txt.swp",
        "x.part",
    ]:
        (tmp_path / rel).write_text("x")
    assert _paths(_source(tmp_path)) == ["a.txt", "sub/b.md", "sub/deep/c.pdf"]


def test_include_and_exclude_patterns(tmp_path):
    (tmp_path / "archive").mkdir()
    for rel in ["a.txt", "b.md", "archive/c.txt"]:
        (tmp_path / rel).write_text("x")
    assert _paths(_source(tmp_path, include=["*.txt"])) == ["a.txt", "archive/c.txt"]
    assert _paths(_source(tmp_path, exclude=["archive"])) == ["a.txt", "b.md"]


def test_hash_is_content_sha256_and_reused_when_size_and_mtime_unchanged(tmp_path, monkeypatch):
    import hashlib

    f = tmp_path / "a.txt"
    f.write_text("hello")
    source = _source(tmp_path)
    ref = source.list().refs[0]
    assert ref.sha256 == hashlib.sha256(b"hello").hexdigest() and ref.size == 5
    calls = []
    real = local.sha256_file
    monkeypatch.setattr(local, "sha256_file", lambda p: calls.append(p) or real(p))
    again = source.list({"a.txt": ref}).refs[0]
    assert again == ref and calls == []
    f.write_text("hello!")
    changed = source.list({"a.txt": ref}).refs[0]
    assert len(calls) == 1 and changed.sha256 != ref.sha256


def test_survives_a_symlink_loop_and_never_leaves_the_folder(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("inside")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    (root / "self").symlink_to(root / "sub", target_is_directory=True)
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "password.txt").write_text("hunter2")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "escape_file.txt").symlink_to(outside / "password.txt")
    (root / "broken.txt").symlink_to(tmp_path / "nowhere")
    paths = _paths(_source(root))
    assert paths == ["self/a.txt"] or paths == ["sub/a.txt"]
    assert not any("password" in p for p in paths)


def test_unreadable_file_is_listed_as_an_error(tmp_path, monkeypatch):
    (tmp_path / "ok.txt").write_text("fine")
    (tmp_path / "locked.txt").write_text("secret")

    def deny(path):
        if path.name == "locked.txt":
            raise PermissionError(13, "Permission denied")
        return "0" * 64

    monkeypatch.setattr(local, "sha256_file", deny)
    listing = _source(tmp_path).list()
    assert [r.path for r in listing.refs] == ["ok.txt"]
    assert listing.errors == {"locked.txt": "cannot read file: Permission denied"}


def test_missing_folder_and_config_round_trip(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        _source(tmp_path / "nope")
    source = _source(tmp_path, include=["*.md"])
    again = source_from_config(source.to_config())
    assert again.source_id == source.source_id and again.config.include == ["*.md"]


@pytest.mark.unit
@pytest.mark.parametrize(
    "patterns", [DEFAULT_EXCLUDE, ["*"], ["*.md"], ["docs/*", "*.pdf"], ["a[[]b].txt", "x?y"], [], ["README*"], ["*a*"]]
)
def test_glob_matching_agrees_with_fnmatch(patterns):
    """The compiled pattern sets (suffix, prefix and regex tests) answer exactly as fnmatch does, on the path or its
    name."""
    names = [
        "a/b.txt",
        "~$x.docx",
        "x.swp",
        "a/.#f",
        "#a#",
        "n.lock",
        "a/b~",
        "x.TMP",
        "x.tmp",
        "dir/sub",
        "a[b].txt",
        "xzy",
        "docs/a.pdf",
        "README.md",
        "q/README",
        "abc",
        "bcd",
        "docs/x/y",
        "notes.md.bak",
    ]
    for rel in names:
        expected = any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(rel.rsplit("/", 1)[-1], p) for p in patterns)
        assert matches_glob(rel, patterns) == expected, (rel, patterns)
