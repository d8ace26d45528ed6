"""Manifest, index and config parsing; platform selection; CVE-2021-41190 guards."""

import json

import pytest

from vessel.errors import InvalidArgument, NotFound, Unsupported
from vessel.image import manifest as m

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def desc(digest=D1, media_type=m.OCI_LAYER_GZIP, size=10, **extra):
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


def oci_manifest(**extra):
    doc = {"schemaVersion": 2, "mediaType": m.OCI_MANIFEST,
           "config": desc(D1, m.OCI_CONFIG), "layers": [desc(D2), desc(D3)]}
    doc.update(extra)
    return json.dumps(doc).encode()


def index(*entries, media_type=m.OCI_INDEX):
    return json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": list(entries)}).encode()


def plat(os_, arch, variant=None, digest=D1):
    platform = {"os": os_, "architecture": arch}
    if variant:
        platform["variant"] = variant
    return desc(digest, m.OCI_MANIFEST, platform=platform)


def test_oci_manifest():
    parsed = m.parse_manifest(oci_manifest(), m.OCI_MANIFEST)
    assert isinstance(parsed, m.Manifest)
    assert parsed.config.digest == D1 and [layer.digest for layer in parsed.layers] == [D2, D3]
    assert json.loads(parsed.to_bytes()) == json.loads(oci_manifest())


def test_docker_schema2_with_charset_content_type():
    doc = json.dumps({"schemaVersion": 2, "mediaType": m.DOCKER_MANIFEST,
                      "config": desc(D1, m.DOCKER_CONFIG), "layers": [desc(D2, m.DOCKER_LAYER)]})
    parsed = m.parse_manifest(doc.encode(), m.DOCKER_MANIFEST + "; charset=utf-8")
    assert parsed.media_type == m.DOCKER_MANIFEST


def test_media_type_from_content_type_or_shape():
    doc = json.loads(oci_manifest())
    del doc["mediaType"]
    assert m.parse_manifest(json.dumps(doc).encode(), m.OCI_MANIFEST).media_type == m.OCI_MANIFEST
    assert m.parse_manifest(json.dumps(doc).encode(), None).media_type == m.OCI_MANIFEST
    raw = json.loads(index(plat("linux", "amd64")))
    del raw["mediaType"]
    assert isinstance(m.parse_manifest(json.dumps(raw).encode(), "application/json"), m.Index)


def test_cve_2021_41190_both_manifests_and_layers():
    doc = json.loads(oci_manifest())
    doc["manifests"] = [plat("linux", "amd64")]
    for served in (m.OCI_MANIFEST, m.OCI_INDEX, None):
        with pytest.raises(InvalidArgument, match="ambiguous"):
            m.parse_manifest(json.dumps(doc).encode(), served)


def test_cve_2021_41190_media_type_mismatch():
    with pytest.raises(InvalidArgument, match="mismatch"):
        m.parse_manifest(oci_manifest(), m.OCI_INDEX)
    with pytest.raises(InvalidArgument, match="mismatch"):
        m.parse_manifest(index(plat("linux", "amd64")), m.DOCKER_MANIFEST_LIST)


def test_served_type_disagrees_with_shape():
    doc = json.loads(index(plat("linux", "amd64")))
    del doc["mediaType"]
    with pytest.raises(InvalidArgument, match="without 'config'"):
        m.parse_manifest(json.dumps(doc).encode(), m.OCI_MANIFEST)


@pytest.mark.parametrize("doc,served", [
    ({"schemaVersion": 1, "name": "x", "fsLayers": []}, None),
    ({"schemaVersion": 1}, "application/vnd.docker.distribution.manifest.v1+prettyjws"),
    ({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v1+json"}, None),
])
def test_schema1_rejected(doc, served):
    with pytest.raises(Unsupported, match="schema 1"):
        m.parse_manifest(json.dumps(doc).encode(), served)


@pytest.mark.parametrize("data", [
    b"", b"not json", b"[]", b"\xff\xfe", b'{"schemaVersion": 3}',
    json.dumps({"schemaVersion": 2, "mediaType": m.OCI_MANIFEST}).encode(),
    oci_manifest(config={"mediaType": m.OCI_CONFIG, "digest": "sha256:../../etc/passwd", "size": 1}),
    oci_manifest(config={"mediaType": m.OCI_CONFIG, "digest": D1, "size": -1}),
    oci_manifest(config={"mediaType": m.OCI_CONFIG, "digest": D1, "size": "1"}),
    oci_manifest(config={"mediaType": m.OCI_CONFIG, "digest": D1, "size": True}),
    oci_manifest(layers="x"),
    oci_manifest(layers=[{"digest": D1}]),
    oci_manifest(annotations={"a": 1}),
    json.dumps({"schemaVersion": 2, "mediaType": "application/x-unknown"}).encode(),
])
def test_malformed(data):
    with pytest.raises(InvalidArgument):
        m.parse_manifest(data, None)


def test_select_platform_default_and_variants():
    idx = m.parse_manifest(index(
        plat("linux", "arm", "v6", D1), plat("linux", "arm", "v7", D2), plat("linux", "amd64", None, D3),
        desc(D1, m.OCI_MANIFEST, platform={"os": "unknown", "architecture": "unknown"})), None)
    assert m.select_platform(idx).digest == D3
    assert m.select_platform(idx, "linux/arm").digest == D2
    assert m.select_platform(idx, "linux/arm/v6").digest == D1
    assert m.select_platform(idx, "linux/armhf").digest == D2
    with pytest.raises(NotFound, match="no matching manifest for linux/arm64"):
        m.select_platform(idx, "linux/arm64")
    with pytest.raises(NotFound):
        m.select_platform(idx, "unknown/unknown")


def test_select_arm64_v8_equals_empty():
    idx = m.parse_manifest(index(plat("linux", "arm64", None, D1)), None)
    assert m.select_platform(idx, "linux/arm64/v8").digest == D1
    assert m.select_platform(idx, "linux/aarch64").digest == D1


def test_attestation_skipped():
    attest = desc(D1, m.OCI_MANIFEST, platform={"os": "linux", "architecture": "amd64"},
                  annotations={"vnd.docker.reference.type": "attestation-manifest"})
    idx = m.parse_manifest(index(attest, plat("linux", "amd64", None, D2)), None)
    assert m.select_platform(idx).digest == D2


@pytest.mark.parametrize("text", ["", "/", "linux//x", "a/b/c/d"])
def test_bad_platform(text):
    with pytest.raises(InvalidArgument, match="invalid platform"):
        m.parse_platform(text)


CONFIG = {
    "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
    "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Entrypoint": ["/init"], "WorkingDir": "/w",
               "User": "1:1", "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}},
               "Labels": {"a": "b"}, "StopSignal": "SIGTERM",
               "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000}},
    "rootfs": {"type": "layers", "diff_ids": [D1, D2]},
    "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "ADD x /"},
                {"created_by": "CMD", "empty_layer": True}],
    "unknown_field": 1,
}


def test_config_round_trip():
    config = m.parse_config(json.dumps(CONFIG).encode())
    assert config.config.cmd == ["sh"] and config.config.entrypoint == ["/init"]
    assert config.config.working_dir == "/w" and config.config.user == "1:1"
    assert config.config.exposed_ports == {"80/tcp": {}} and config.config.volumes == {"/data": {}}
    assert config.config.labels == {"a": "b"} and config.config.stop_signal == "SIGTERM"
    assert config.config.healthcheck["Interval"] == 1000000000
    assert config.diff_ids == [D1, D2]
    assert config.history[1].empty_layer and config.history[0].created_by == "ADD x /"
    assert config.to_json() == CONFIG


@pytest.mark.parametrize("change", [
    {"rootfs": None}, {"rootfs": {"type": "x", "diff_ids": []}},
    {"rootfs": {"type": "layers", "diff_ids": ["sha256:short"]}},
    {"config": {"Env": "PATH=/bin"}}, {"config": {"Labels": {"a": 1}}}, {"history": {}},
    {"config": []},
])
def test_config_malformed(change):
    doc = dict(CONFIG, **change)
    with pytest.raises(InvalidArgument, match="malformed image config"):
        m.parse_config(json.dumps(doc).encode())


def _mutations(document, rng):
    """Replace random values of a JSON document with values of the wrong type or shape."""
    weird = [None, 0, -1, 2 ** 70, 1.5, True, "", "x", [], {}, [1], {"a": 1}, "sha256:" + "A" * 64]
    for _ in range(300):
        doc = json.loads(json.dumps(document))
        for _ in range(rng.randint(1, 3)):
            node, path = doc, []
            while isinstance(node, (dict, list)) and node and rng.random() < 0.7:
                key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
                path.append((node, key))
                node = node[key]
            if path:
                parent, key = path[-1]
                parent[key] = json.loads(json.dumps(rng.choice(weird)))
        yield json.dumps(doc).encode()


def test_fuzz_only_typed_errors():
    """CVE-2021-21285 class: malformed documents raise a VesselError, never crash."""
    import random

    from vessel.errors import VesselError

    rng = random.Random(1234)
    manifest = json.loads(oci_manifest())
    idx = json.loads(index(plat("linux", "amd64"), plat("linux", "arm", "v7", D2)))
    for data in list(_mutations(manifest, rng)) + list(_mutations(idx, rng)):
        try:
            parsed = m.parse_manifest(data, None)
            if isinstance(parsed, m.Index):
                m.select_platform(parsed)
        except VesselError:
            pass
    for data in _mutations(CONFIG, rng):
        try:
            m.parse_config(data)
        except VesselError:
            pass
    for data in (oci_manifest()[:n] for n in range(0, len(oci_manifest()), 7)):
        try:
            m.parse_manifest(data, None)
        except VesselError:
            pass
