"""The loader and the schema pass on hostile or odd input: located errors, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cockpit.cli import main
from cockpit.config.source import MAX_DEPTH, MAX_FILE_BYTES
from cockpit.config.validate import validate_path

ACCOUNT = "apiVersion: cockpit/v1\nkind: Account\nname: acme\n"


def write(tmp_path: Path, text: str | bytes, name: str = "tenant.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return tmp_path


def messages(root: Path) -> list[str]:
    return [f"{d.location.line}:{d.location.column}: {d.severity}: {d.message}" for d in validate_path(root).diagnostics]


def invoke(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_valid_minimal_tenant(tmp_path: Path) -> None:
    write(tmp_path, ACCOUNT)
    assert validate_path(tmp_path).ok
    result = invoke("validate", str(tmp_path))
    assert result.exit_code == 0
    assert result.stdout == "valid: 0 errors, 0 warnings in 1 document (1 file)\n"


def test_unknown_field_is_reported_at_its_own_line(tmp_path: Path) -> None:
    write(tmp_path, ACCOUNT + "allocation:\n  monthly_credits: 10\n  montly_limit: 5\n")
    assert messages(tmp_path) == [
        "6:3: error: unknown field 'montly_limit'; did you mean 'monthly_credits'?"
    ]


def test_all_errors_collected_in_one_run(tmp_path: Path) -> None:
    write(tmp_path, ACCOUNT + "status: gone\nalias: [1]\n", "a.yaml")
    write(tmp_path, "apiVersion: cockpit/v1\nkind: Model\nname: m\n", "b.yaml")
    found = [(d.location.file, d.location.line) for d in validate_path(tmp_path).diagnostics]
    assert ("a.yaml", 4) in found or any(f.endswith("a.yaml") and l == 4 for f, l in found)
    assert len(found) >= 4


def test_empty_file_is_a_warning(tmp_path: Path) -> None:
    write(tmp_path, ACCOUNT)
    write(tmp_path, "", "empty.yaml")
    result = validate_path(tmp_path)
    assert result.ok
    assert [d.message for d in result.diagnostics] == ["file holds no YAML documents"]


def test_missing_path(tmp_path: Path) -> None:
    result = invoke("validate", str(tmp_path / "nope"))
    assert result.exit_code == 1
    assert "no such file or directory" in result.output
    assert "Traceback" not in result.output


def test_directory_without_yaml(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    result = invoke("validate", str(tmp_path))
    assert result.exit_code == 1
    assert "no *.yaml or *.yml files found" in result.output


def test_huge_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    assert big.stat().st_size > MAX_FILE_BYTES
    assert messages(tmp_path) == [
        "1:1: error: file is 50.0 MiB, above the 32 MiB limit per file; split it into several files"
    ]


def test_not_utf8(tmp_path: Path) -> None:
    write(tmp_path, ACCOUNT.encode() + b"alias: caf\xe9\n")
    assert messages(tmp_path) == ["4:11: error: file is not valid UTF-8; save it as UTF-8 text"]


def test_deep_nesting(tmp_path: Path) -> None:
    depth = MAX_DEPTH + 10
    write(tmp_path, ACCOUNT + "feature_pack:\n  config: " + "[" * depth + "]" * depth + "\n")
    (message,) = messages(tmp_path)
    assert f"nesting deeper than {MAX_DEPTH} levels" in message


def test_alias_bomb_is_bounded(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    write(tmp_path, "\n".join(lines) + "\n")
    (message,) = messages(tmp_path)
    assert "nodes (aliases expanded)" in message


def test_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    write(
        tmp_path,
        "apiVersion: cockpit/v1\nkind: Account\nname: acme\ndescription: &d ACME Corp\nalias: *d\n"
        "---\n<<: {apiVersion: cockpit/v1, kind: Account}\nname: beta\n",
    )
    result = validate_path(tmp_path)
    assert result.ok, result.diagnostics
    assert result.tenant.accounts["acme"].model.alias == "ACME Corp"
    assert "beta" in result.tenant.accounts


def test_unsupported_tag(tmp_path: Path) -> None:
    write(tmp_path, ACCOUNT + "alias: !Ref other\n")
    assert messages(tmp_path) == ["4:8: error: unsupported YAML tag '!Ref'; remove the tag"]


def test_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    write(tmp_path, "- just\n- a list\n")
    (message,) = messages(tmp_path)
    assert message.startswith("1:1: error: a document must be a mapping")


def test_document_without_kind(tmp_path: Path) -> None:
    write(tmp_path, "apiVersion: cockpit/v1\nname: acme\n")
    (message,) = messages(tmp_path)
    assert message.startswith("1:1: error: document has no 'kind'")


def test_multi_document_and_yml_suffix_and_recursion(tmp_path: Path) -> None:
    write(tmp_path, ACCOUNT + "---\n" + ACCOUNT.replace("acme", "beta"), "nested/deeper/accounts.yml")
    write(tmp_path, "apiVersion: cockpit/v1\nkind: Account\nname: gamma\n", ".hidden/skip.yaml")
    result = validate_path(tmp_path)
    assert result.ok
    assert sorted(result.tenant.accounts) == ["acme", "beta"]


def test_email_outside_domain_is_a_warning(tmp_path: Path) -> None:
    write(tmp_path, ACCOUNT + "email_domain: acme.com\nadmins: [{email: boss@other.org}]\n")
    result = validate_path(tmp_path)
    assert result.ok
    assert messages(tmp_path) == [
        "5:18: warning: 'boss@other.org' is outside the account's email_domain 'acme.com'"
    ]


def test_json_format_is_a_list_of_objects(tmp_path: Path) -> None:
    write(tmp_path, ACCOUNT + "status: gone\n")
    result = invoke("validate", str(tmp_path), "--format", "json")
    assert result.exit_code == 1
    (item,) = json.loads(result.stdout)
    assert item["line"] == 4 and item["column"] == 9 and item["severity"] == "error"
    assert item["message"].startswith("'status' must be one of: active, suspended")


def test_schema_errors_do_not_cascade_into_reference_errors(tmp_path: Path) -> None:
    write(
        tmp_path,
        ACCOUNT
        + "---\napiVersion: cockpit/v1\nkind: GuardrailPreset\naccount: acme\ncode: pii\nname: 5\n"
        + "---\napiVersion: cockpit/v1\nkind: Agent\naccount: acme\nname: bot\nguardrails: [pii]\n",
    )
    assert messages(tmp_path) == ["9:7: error: 'name' must be a string, not an integer"]


def test_equal_split_sums_exactly(tmp_path: Path) -> None:
    write(
        tmp_path,
        ACCOUNT
        + "allocation: {monthly_credits: 100}\n---\napiVersion: cockpit/v1\nkind: Directory\n"
        + "account: acme\ndomain: copilot\norgs: [{name: a}, {name: b}, {name: c}]\n---\n"
        + "apiVersion: cockpit/v1\nkind: BudgetPlan\naccount: acme\nname: q1\n"
        + "distribute_equally: [{scopes: [org:a, org:b, org:c], total_credits: 100}]\n",
    )
    assert validate_path(tmp_path).ok
    write(tmp_path, (tmp_path / "tenant.yaml").read_text().replace("total_credits: 100", "total_credits: 100.01"))
    (message,) = messages(tmp_path)
    assert "allocates 100.01 at the top level" in message


def test_grant_outside_model_policy_is_a_warning(tmp_path: Path) -> None:
    write(
        tmp_path,
        ACCOUNT
        + "model_policy: {copilot: {allow: [m1]}}\n---\n"
        + "".join(
            f"apiVersion: cockpit/v1\nkind: Model\nname: {m}\nlitellm: {{model: openai/{m}}}\n"
            "pricing: {input_per_million: 1, output_per_million: 1}\n---\n"
            for m in ("m1", "m2")
        )
        + "apiVersion: cockpit/v1\nkind: ModelAccess\naccount: acme\ndomain: copilot\n"
        + "grants: [{model: m1, scope: account}, {model: m2, scope: account}]\n",
    )
    result = validate_path(tmp_path)
    assert result.ok
    assert [m for m in messages(tmp_path)] == [
        "22:47: warning: grant of 'm2' can never take effect: the account's copilot model_policy does not allow it"
    ]


def test_trailing_document_separator_is_ignored(tmp_path: Path) -> None:
    write(tmp_path, ACCOUNT + "---\n")
    result = validate_path(tmp_path)
    assert result.ok and not result.diagnostics


def test_missing_path_message_has_no_fake_position(tmp_path: Path) -> None:
    result = invoke("validate", str(tmp_path / "nope"))
    assert result.stdout.startswith(f"{tmp_path / 'nope'}: error: no such file or directory")
