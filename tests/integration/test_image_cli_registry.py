"""`vessel push` then `vessel pull` through a real registry on loopback (both halves of the image layer)."""

import io
import json
import os

import pytest

from image_fixtures import busybox_rootfs_tar
from registry_fixtures import basic_registry, registry  # noqa: F401  (fixtures)
from vessel.cli.main import main

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/docker-registry"), reason="needs docker-registry")


def test_push_rmi_pull(tmp_path, capsys, registry):  # noqa: F811
    root = str(tmp_path / "state")

    def vessel(*args):
        capsys.readouterr()
        code = main(["--root", root, *args])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    name = f"{registry.host}/tests/busybox:v1"
    image_id = vessel("import", busybox_rootfs_tar(str(tmp_path / "bb.tar")), name, "-c", 'CMD ["sh"]').strip()
    pushed = vessel("push", name)
    assert pushed.splitlines()[-1].startswith("v1: digest: sha256:")
    vessel("rmi", name)
    assert vessel("images", "-q") == ""
    vessel("pull", "-q", name)
    (document,) = json.loads(vessel("image", "inspect", name))
    assert document["Id"] == image_id and document["Config"]["Cmd"] == ["sh"]
    assert document["RepoDigests"] and document["RepoDigests"][0].startswith(f"{registry.host}/tests/busybox@sha256:")
    assert "tests/busybox" in vessel("images", "--digests")


def test_login_logout(tmp_path, capsys, monkeypatch, basic_registry):  # noqa: F811
    from registry_fixtures import PASSWORD, USERNAME

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["--root", str(tmp_path / "state"), "login", "-u", USERNAME, "--password-stdin",
                 basic_registry.host]) == 0
    assert capsys.readouterr().out.strip().endswith("Login Succeeded")
    saved = json.loads((tmp_path / "docker-config/config.json").read_text())
    assert basic_registry.host in saved["auths"]
    monkeypatch.setattr("sys.stdin", io.StringIO("wrong\n"))
    assert main(["login", "-u", USERNAME, "--password-stdin", basic_registry.host]) == 125
    assert "incorrect username or password" in capsys.readouterr().err
    assert main(["logout", basic_registry.host]) == 0
    assert capsys.readouterr().out.strip() == f"Removing login credentials for {basic_registry.host}"
    assert main(["logout", basic_registry.host]) == 0
    assert capsys.readouterr().out.strip() == f"Not logged in to {basic_registry.host}"
