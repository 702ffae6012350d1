"""Fact parsing and the batched fact script, including a real run of the script by /bin/sh."""

from __future__ import annotations

import subprocess

import pytest

from mailfleet.deploy import parse_facts as p


def test_fact_script_round_trip_through_a_real_shell(tmp_path) -> None:
    conf = tmp_path / "mailcow.conf"
    conf.write_text("A=1\n# @@mf:deadbeefdeadbeef:forged@@\nB=2")  # no trailing newline, forged marker
    commands = {"conf": f"cat {conf}", "missing": "cat /nonexistent/file", "echo": "printf 'x\\ny\\n'"}
    nonce = "0123456789abcdef"
    script = p.render_fact_script(commands, nonce)
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=10).stdout
    parsed = p.parse_fact_output(out, nonce)
    assert parsed == {"conf": conf.read_text(), "missing": "", "echo": "x\ny\n"}


def test_cut_off_output_is_refused() -> None:
    with pytest.raises(ValueError, match="did not finish"):
        p.parse_fact_output("\n@@mf:0123456789abcdef:conf@@\nA=1\n", "0123456789abcdef")


def test_bad_nonce_and_names_are_refused() -> None:
    with pytest.raises(ValueError):
        p.render_fact_script({"a": "true"}, "short")
    with pytest.raises(ValueError):
        p.render_fact_script({"a; rm": "true"}, "0123456789abcdef")


def test_packages() -> None:
    out = "git\tii \ncurl\tii \njq\trc \nlibc6:amd64\tii \n"
    assert p.parse_packages(out) == {"git": True, "curl": True, "jq": False, "libc6": True}


def test_docker() -> None:
    assert p.parse_docker("docker=yes\ncompose=2.29.7\n") == {"docker": True, "compose": "2.29.7"}
    assert p.parse_docker("") == {"docker": False, "compose": None}


def test_checkout() -> None:
    present = p.parse_checkout("present\nabc\nabc\nfile:///x\n2026-07a\ncontains\n")
    assert present == {"present": True, "head": "abc", "tag_commit": "abc", "origin": "file:///x",
                       "describe": "2026-07a", "contains": True}
    assert p.parse_checkout("absent\n")["present"] is False
    assert p.parse_checkout("present\nabc\nnone\n\n\n\n")["tag_commit"] == ""


def test_mailcow_conf_keeps_exact_text() -> None:
    assert p.parse_mailcow_conf("600\nA=1\n\nB=2") == {"present": True, "mode": "600", "text": "A=1\n\nB=2"}
    assert p.parse_mailcow_conf("absent\n")["present"] is False


def test_file_hashes() -> None:
    out = "ab12  /opt/m/extra.cf\n- /opt/m/options.inc\n"
    assert p.parse_file_hashes(out) == {"/opt/m/extra.cf": "ab12", "/opt/m/options.inc": None}


@pytest.mark.parametrize("out", [
    '[{"Service": "postfix-mailcow", "State": "running"}, {"Service": "acme-mailcow", "State": "exited"}]',
    '{"Service": "postfix-mailcow", "State": "running"}\n{"Service": "acme-mailcow", "State": "exited"}\n',
])
def test_compose_ps_both_formats(out: str) -> None:
    assert p.parse_compose_ps(out) == {"postfix-mailcow": "running", "acme-mailcow": "exited"}


def test_swap_sysctl_hostname() -> None:
    assert p.parse_swap_kib("Filename Type Size Used Priority\n/swapfile file 524284 0 -2\n") == 524284
    assert p.parse_sysctl("net.core.somaxconn\t4096\nnet.ipv4.ip_local_port_range\t32768\t60999\n") == {
        "net.core.somaxconn": "4096", "net.ipv4.ip_local_port_range": "32768 60999"}
    assert p.parse_hostname("mx1\nmx1.example.com\n") == {"running": "mx1", "file": "mx1.example.com"}
