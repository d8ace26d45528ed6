"""Docker-compatible formatting helpers and `--change` parsing."""

import pytest

from vessel.cli.images import _matches, human_duration, human_size, render, table
from vessel.errors import InvalidArgument
from vessel.image.archive import apply_changes
from vessel.image.manifest import ContainerConfig


@pytest.mark.parametrize("size,text", [(0, "0B"), (999, "999B"), (1000, "1kB"), (4_261_000, "4.26MB"),
                                       (7_792_915, "7.79MB"), (123_456_789_012, "123GB")])
def test_human_size(size, text):
    assert human_size(size) == text


@pytest.mark.parametrize("seconds,text", [(0.5, "Less than a second"), (1, "1 second"), (30, "30 seconds"),
                                          (90, "About a minute"), (600, "10 minutes"), (3600, "About an hour"),
                                          (3 * 3600, "3 hours"), (3 * 86400, "3 days"),
                                          (20 * 86400, "2 weeks"), (90 * 86400, "3 months"),
                                          (800 * 86400, "2 years")])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_table_layout():
    text = table([["alpine", "3.20", "6d3738784554"]], ["REPOSITORY", "TAG", "IMAGE ID"])
    assert text.splitlines() == ["REPOSITORY   TAG       IMAGE ID", "alpine       3.20      6d3738784554"]


def test_render():
    rows = [{"Repository": "a", "Tag": "1"}, {"Repository": "b", "Tag": "2"}]
    assert render("{{.Repository}}:{{.Tag}}", rows) == "a:1\nb:2"
    assert render("{{json .Tag}}", rows) == '"1"\n"2"'
    assert render("{{json .}}", rows[:1]) == '{"Repository":"a","Tag":"1"}'
    nested = [{"Config": {"Cmd": ["sh", "-c"], "Labels": {"b": "2", "a": "1"}, "Tty": False, "User": None}}]
    assert render("{{.Config.Cmd}} {{.Config.Labels}} {{.Config.Tty}} {{.Config.User}}", nested) == (
        "[sh -c] map[a:1 b:2] false <no value>")
    assert render("{{json .Config.Cmd}}", nested) == '["sh","-c"]'
    assert render("table {{.Repository}}\\t{{.Tag}}", rows, {"Repository": "REPOSITORY"}).splitlines() == [
        "REPOSITORY   TAG", "a            1", "b            2"]


@pytest.mark.parametrize("pattern,expected", [("busybox", True), ("busybox:latest", True), ("busybox:1", False),
                                              ("docker.io/library/busybox", True), ("busy*", True),
                                              ("*:lat*", True), ("other", False), ("BAD NAME", False)])
def test_reference_filter(pattern, expected):
    assert _matches({"Repository": "busybox", "Tag": "latest"}, pattern) is expected


def test_apply_changes():
    config = apply_changes(ContainerConfig(env=["A=old"]), [
        'CMD ["sh", "-c", "echo"]', "entrypoint /init --flag", "ENV A=1 B=\"two words\"", "ENV C 3 4",
        "LABEL x=y", "EXPOSE 80 53/udp", "VOLUME /a /b", 'VOLUME ["/c"]', "WORKDIR /srv", "WORKDIR app",
        "USER nobody", "STOPSIGNAL SIGINT", "ONBUILD RUN true"])
    assert config.cmd == ["sh", "-c", "echo"] and config.entrypoint == ["/bin/sh", "-c", "/init --flag"]
    assert config.env == ["A=1", "B=two words", "C=3 4"]
    assert config.labels == {"x": "y"} and config.exposed_ports == {"80/tcp": {}, "53/udp": {}}
    assert set(config.volumes) == {"/a", "/b", "/c"} and config.working_dir == "/srv/app"
    assert config.user == "nobody" and config.stop_signal == "SIGINT" and config.on_build == ["RUN true"]


@pytest.mark.parametrize("change", ["FROM alpine", "RUN true", "EXPOSE http", "ENV", "WORKDIR", "ENV =x"])
def test_apply_changes_rejects(change):
    with pytest.raises(InvalidArgument):
        apply_changes(ContainerConfig(), [change])
