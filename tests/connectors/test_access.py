"""Readers from the source: POSIX modes of real files, `.kbflow-access` files, and the errors of a broken one."""

from __future__ import annotations

import os

import pytest

from connectors.access import AccessFileError, AccessRules, parse_access_file, parse_groups, posix_readers
from connectors.local import LocalSource, LocalSourceConfig

pytestmark = pytest.mark.unit


def owner() -> str:
    import pwd

    return f"user:{pwd.getpwuid(os.geteuid()).pw_name}"


def write(path, text="text", mode=0o644, gid=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if gid is not None:
        os.chown(path, -1, gid)
    os.chmod(path, mode)
    return path


def listed(root) -> dict:
    return {r.path: r.readers for r in LocalSource(LocalSourceConfig(root=str(root))).list().refs}


def test_posix_modes_give_public_or_the_group_and_the_owner(tmp_path, machine_groups):
    hr = machine_groups["hr"]
    write(tmp_path / "handbook.txt", mode=0o644)
    write(tmp_path / "hr" / "salary_bands.txt", mode=0o640, gid=hr)
    write(tmp_path / "hr" / "private.txt", mode=0o600, gid=hr)
    write(tmp_path / "hr" / "group_only.txt", mode=0o040, gid=hr)
    assert listed(tmp_path) == {
        "handbook.txt": ("*",),
        "hr/salary_bands.txt": tuple(sorted(["hr", owner()])),
        "hr/private.txt": (owner(),),
        "hr/group_only.txt": tuple(sorted(["hr", owner()])),
    }
    assert posix_readers(0o604, 0, hr) == ("*",)


def test_the_closest_access_file_decides_and_its_last_matching_line_wins(tmp_path, machine_groups):
    write(tmp_path / "handbook.txt")
    write(tmp_path / "hr" / "salary_bands.txt")  # world-readable: the access files restrict it
    write(tmp_path / "hr" / "holidays.txt")
    write(tmp_path / "hr" / "old" / "2019.txt")
    write(tmp_path / "finance" / "budget.xlsx", mode=0o640, gid=machine_groups["staff"])
    (tmp_path / ".kbflow-access").write_text("# whole share\n*: staff\nhandbook.txt: *\n")
    (tmp_path / "hr" / ".kbflow-access").write_text("*: hr\n\n# the bands, for managers too\nsalary*: hr, managers\n")
    got = listed(tmp_path)
    assert got == {
        "handbook.txt": ("*",),
        "hr/salary_bands.txt": ("hr", "managers"),
        "hr/holidays.txt": ("hr",),
        "hr/old/2019.txt": ("hr",),  # `*` crosses folders, as in include patterns
        "finance/budget.xlsx": ("staff",),  # the root's access file overrides its POSIX group
    }
    assert ".kbflow-access" not in got and "hr/.kbflow-access" not in got  # never a document


def test_a_file_whose_lines_miss_a_document_leaves_it_to_the_next_one_and_then_to_posix():
    rules = AccessRules()
    rules.add("", "*.pdf: legal\n", "/share/.kbflow-access")
    rules.add("hr", "salary*: hr\n", "/share/hr/.kbflow-access")
    assert rules.readers("hr/salary.txt") == ("hr",)
    assert rules.readers("hr/contract.pdf") == ("legal",)
    assert rules.readers("hr/notes.txt") is None  # no rule: the source's own permissions decide


@pytest.mark.parametrize(
    "text, line, reason",
    [
        ("*: hr\nsalary bands hr\n", 2, "no ':'"),
        ("# c\n\n: hr\n", 3, "no pattern"),
        ("*.txt:\n", 1, "names no group"),
        ("*.txt: hr,,staff\n", 1, "empty group name"),
        ("*.txt: human resources\n", 1, "'human resources' is not a group name"),
    ],
)
def test_a_broken_line_is_named_with_its_file_line_and_reason(text, line, reason):
    with pytest.raises(AccessFileError, match=rf"^/share/\.kbflow-access, line {line}: .*{reason}"):
        parse_access_file(text, "/share/.kbflow-access")


def test_listing_a_folder_with_a_broken_access_file_fails_naming_it(tmp_path):
    write(tmp_path / "a.txt")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".kbflow-access").write_text("ok.txt: hr\nthis line has no colon\n")
    with pytest.raises(AccessFileError) as err:
        listed(tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'sub' / '.kbflow-access'}, line 2: no ':'")


def test_groups_asked_for_are_parsed_and_checked():
    assert parse_groups("staff, hr,,hr") == ("hr", "staff")
    assert parse_groups(["hr", "user:alice"]) == ("hr", "user:alice")
    assert parse_groups(None) == parse_groups("") == ()
    with pytest.raises(ValueError, match="--all-documents"):
        parse_groups("*")
