"""``eval --dataset synthetic:N`` runs the synthetic distractor set through the harness."""
import json

import pytest

import main


def test_eval_on_synthetic_distractor_set(tmp_path, capsys):
    out = tmp_path / "synthetic.json"
    code = main.main(["eval", "--dataset", "synthetic:2", "--tracker", "opencv:KCF", "--max-frames", "8",
                      "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    sequences = result["trackers"]["opencv:KCF"]["sequences"]
    assert list(sequences) == ["synthetic_0500", "synthetic_0501"]
    assert result["dataset"] == "synthetic:2"
    assert "synthetic_0500" in capsys.readouterr().out


@pytest.mark.parametrize("spec", ["synthetic:0", "synthetic:x"])
def test_bad_synthetic_count_is_one_line_error(spec, capsys):
    assert main.main(["eval", "--dataset", spec, "--tracker", "opencv:KCF"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "COUNT" in err[0]
