from pathlib import Path

import pytest
import yaml

from sarise.config import ConfigError, SarisConfig, config_schema, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_and_demo_config_are_valid():
    assert load_config() == SarisConfig()
    demo = load_config(ROOT / "config" / "config.yaml")
    assert demo.run == "demo" and demo.symmetry.size == 128


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"symmetry.sise": 3}, r"symmetry\.sise: Extra inputs are not permitted"),
        ({"symmetry.size": 8}, r"symmetry\.size: .*greater than or equal to 16"),
        ({"symmetry.cell_px": [50, 10]}, r"symmetry: cell_px must satisfy"),
        ({"symmetry.cell_resolution": 48}, r"cell_resolution must be a power of two"),
        ({"symmetry.motif_sources": ["field", "noise"]}, r"symmetry\.motif_sources\.1"),
        ({"symmetry.natural.val": ["camera"]}, r"'camera' is in both train and val"),
        ({"symmetry.natural.test": ["lena"]}, r"unknown natural image 'lena'"),
        ({"symmetry.augment.noise.p": 2}, r"symmetry\.augment\.noise\.p"),
        ({"run": "a b"}, r"run: String should match pattern"),
        ({"symmetry.natural.test": []}, r"natural\.test lists no image but natural motifs"),
        ({"ingest.channels": ["("]}, r"ingest\.channels: .*channels\[0\] = '\(' is not a regular"),
        ({"ingest.channels": ["phase", "a{4294967296}"]}, r"channels\[1\] = 'a\{4294967296\}'"),
        ({"ingest.channels": []}, r"channels needs at least one pattern"),
        ({"ingest.chunk": 100000}, r"ingest\.chunk: .*less than or equal to 4096"),
        ({"ingest.max_pixels": 0}, r"ingest\.max_pixels: .*greater than or equal to 1"),
        ({"search.k": 10**9}, r"search\.k: .*less than or equal to 10000"),
    ],
)
def test_bad_values_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, **override)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("symmetry: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- 1\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(bad)


def test_committed_schema_is_generated_from_the_models():
    committed = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert committed == config_schema(), (
        "regenerate: sarise config --schema > workflow/schemas/config.schema.yaml"
    )


def _leaf_keys(schema, node, prefix=""):
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].split("/")[-1]]
    if "properties" not in node:
        yield prefix.rstrip(".")
    for name, sub in node.get("properties", {}).items():
        yield from _leaf_keys(schema, sub, f"{prefix}{name}.")


def test_every_key_is_documented():
    full = (ROOT / "config" / "README.md").read_text()
    sections = {s.split("`")[1]: s for s in full.split("\n## ")[1:]}
    schema = config_schema()
    for key in _leaf_keys(schema, schema):
        section, _, leaf = key.partition(".")
        if not leaf:  # top-level scalars (run) are documented at the top
            assert f"`{section}`" in full, f"config key {key} is not documented"
            continue
        doc = sections.get(section, "")
        # a probability's p and range are documented with the augmentation they belong to
        parent = leaf.rsplit(".", 1)[0]
        assert f"`{leaf}`" in doc or (leaf.startswith("augment.") and f"`{parent}`" in doc), (
            f"config key {key} is not documented in config/README.md"
        )


def test_a_preset_sets_the_values_the_config_shows():
    from sarise.config import load_config
    from sarise.project import umap_params

    cfg = load_config({"project": {"preset": "paper", "n_neighbors": 30}})
    assert (cfg.project.n_neighbors, cfg.project.min_dist, cfg.project.metric) == (
        5, 0.3, "correlation")  # fmt: skip
    assert umap_params(cfg.project) == {"n_neighbors": 5, "min_dist": 0.3, "metric": "correlation"}
    assert load_config({"project": {"n_neighbors": 30}}).project.n_neighbors == 30


def test_archive_and_channel_settings():
    from sarise.config import ConfigError, load_config

    cfg = load_config({"archive": {"sources": ["scans/"], "exclude": ["*_old.ibw"]},
                       "ingest": {"channels": [["phase", "height"], "amplitude"]},
                       "extract": {"channel": "fuse"}})  # fmt: skip
    assert cfg.archive.sources == ("scans/",) and cfg.ingest.channels[0] == ("phase", "height")
    assert cfg.extract.channel == "fuse"
    for bad in ({"ingest": {"channels": [[]]}}, {"ingest": {"channels": [["ok", "("]]}},
                {"extract": {"channel": "all"}}, {"extract": {"channel": -1}},
                {"archive": {"source": ["x"]}}):  # fmt: skip
        with pytest.raises(ConfigError):
            load_config(bad)
