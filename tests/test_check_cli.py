"""`tierwise train` with a target, then `tierwise check` on unshifted and drifted traffic."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from guarantee_helpers import synthetic, write_log

from tierwise.experiments.cli import main
from tierwise.router.artifact import load_artifact
from tierwise.router.core import Router

TARGET = "target: {kind: absolute, value: 0.75, confidence: 0.9}\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, str]:
    """Train once for the module: (artifact, work dir, what `tierwise train` printed)."""
    import contextlib
    import io

    d = tmp_path_factory.mktemp("check")
    cfg = write_log(d / "train", synthetic(2500, 1), name="traffic", extra_yaml=TARGET)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["train", str(cfg), "--out", str(d / "run"), "--no-progress"]) == 0
    return d / "run" / "router.tierwise", d, buf.getvalue()


def test_train_prints_the_guarantee_and_stores_it_in_the_manifest(trained):
    artifact, _, printed = trained
    assert "Guarantee: with 90% confidence, routing with knob =" in printed
    assert "mean quality ≥ 0.75" in printed
    payload = load_artifact(artifact).payload
    cert = payload["certificate"]
    assert cert["schema"] == "tierwise.certificate/v1" and cert["passed"] is True
    assert cert["scheme"]["name"] == "split" and cert["scheme"]["n_certification"] > 200
    assert payload["metrics"]["certified"] == 1.0
    assert payload["policy"]["knob"] == cert["knob"] and payload["policy"]["fallback_model"] is None


def test_check_passes_unshifted_traffic(trained, capsys):
    artifact, d, _ = trained
    new = write_log(d / "same", synthetic(1500, 5), name="same")
    out_json = d / "same" / "check.json"
    assert main(["check", str(artifact), str(new), "--json", str(out_json), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "VIOLATED" not in text and ("HOLDS" in text or "INCONCLUSIVE" in text)
    assert "1,500 labelled prompts" in text
    record = json.loads(out_json.read_text())
    assert record["check"]["verdict"] in {"holds", "inconclusive"}
    assert record["check"]["estimate"] > 0.75


def test_check_flags_harder_traffic_as_a_violation(trained, capsys):
    artifact, d, _ = trained
    new = write_log(d / "hard", synthetic(1500, 6, shift=0.6), name="hard")
    assert main(["check", str(artifact), str(new), "--no-progress"]) == 1
    text = capsys.readouterr().out
    assert "VIOLATED: On 1,500 new prompts the target (mean quality ≥ 0.75) is violated" in text
    assert "drifted" in text


def test_recertify_writes_an_artifact_that_holds_on_the_drifted_traffic(trained, capsys):
    artifact, d, _ = trained
    hard = write_log(d / "hard2", synthetic(2000, 7, shift=0.4), name="hard2")
    out = d / "recertified.tierwise"
    assert main(["check", str(artifact), str(hard), "--recertify", str(out), "--no-progress"]) == 1
    assert "Re-certified on this sample. Guarantee:" in capsys.readouterr().out
    old, new = Router.load(str(artifact)), Router.load(str(out))
    assert new.certificate_ is not None and new.certificate_["scheme"]["name"] == "recertified"
    assert new.certificate_["n_calibration"] == 2000
    assert new.manifest_ is not None
    assert new.manifest_["payload"]["extra"]["recertified"]["dataset"] == "hard2"
    # More of the drifted traffic must now go to pricier tiers (or everything to the reference).
    prompts = list(synthetic(400, 8).prompts)
    rank = {"small": 0, "mid": 1, "big": 2}
    spend = [np.mean([rank[str(x.model)] for x in r.route(prompts)]) for r in (old, new)]
    assert spend[1] > spend[0]
    again = write_log(d / "hard3", synthetic(1500, 9, shift=0.4), name="hard3")
    assert main(["check", str(out), str(again), "--no-progress"]) == 0
    assert "VIOLATED" not in capsys.readouterr().out


def test_extra_models_are_ignored_and_missing_ones_refused(trained, capsys):
    artifact, d, _ = trained
    ds = synthetic(300, 10)
    wider = replace(
        ds,
        models=(*ds.models, "huge"),
        quality=np.hstack([ds.quality, np.ones((300, 1))]),
        cost=np.hstack([ds.cost, np.full((300, 1), 0.5)]),
    )
    cfg = write_log(d / "wide", wider, name="wide", models=wider.models)
    assert main(["check", str(artifact), str(cfg), "--no-progress"]) in (0, 1)
    assert "ignored models not in the router: ['huge']" in capsys.readouterr().out
    narrow = write_log(d / "narrow", ds, name="narrow", models=("small", "big"))
    assert main(["check", str(artifact), str(narrow), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "must have every tier of the router ['small', 'mid', 'big']; missing ['mid']" in err


def test_artifact_without_certificate_needs_a_target(tmp_path, capsys):
    from tierwise.router.config import RouterConfig

    cfg = RouterConfig.model_validate({"embedder": {"name": "hashing:64"}})
    router = Router(cfg).fit(synthetic(300, 1), synthetic(200, 2))
    artifact = router.save(str(tmp_path / "plain.tierwise"))
    plain = write_log(tmp_path / "plain", synthetic(300, 3), name="plain")
    assert main(["check", artifact, str(plain), "--no-progress"]) == 2
    assert "carries no certificate" in capsys.readouterr().err
    with_target = write_log(
        tmp_path / "t", synthetic(1000, 3), name="t", extra_yaml="target: {value: 0.5}\n"
    )
    assert main(["check", artifact, str(with_target), "--no-progress"]) == 0
    assert "HOLDS: On 1,000 new prompts the target (mean quality ≥ 0.5) still holds" in (
        capsys.readouterr().out
    )


def test_a_bare_data_section_describes_the_traffic_too(trained, capsys):
    artifact, d, _ = trained
    write_log(d / "bare", synthetic(600, 11), name="bare")
    bare = d / "bare" / "only_data.yaml"
    bare.write_text(
        "sources:\n"
        "  - path: bare.csv\n"
        '    quality: "{model}"\n'
        '    cost: "{model}|cost"\n'
        "columns: {id: id, prompt: prompt}\n"
        "labels: {kind: binary, missing: drop_row}\n",
        encoding="utf-8",
    )
    assert main(["check", str(artifact), str(bare), "--no-progress"]) in (0, 1)
    assert "on 'only_data': 600 labelled prompts" in capsys.readouterr().out
