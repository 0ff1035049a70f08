"""The official Cityscapes scores (`seglab.evaluation.cityscapes_eval`) against the benchmark's
own ``evalPixelLevelSemanticLabeling``, run in-process on small synthetic labelIds PNGs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official
from PIL import Image

from seglab.data.labels import LabelMapping, cityscapes_mapping
from seglab.evaluation.cityscapes_eval import (
    CATEGORY_NAMES,
    CLASS_NAMES,
    MEAN_INSTANCE_SIZE,
    benchmark_mapping,
    cityscapes_iiou,
    cityscapes_kind,
    cityscapes_scores,
    instance_counts,
    label_id_confusion,
    scores_from_class_matrix,
    to_label_ids,
)
from seglab.objectives.multiclass_metrics import confusion_matrix, summarize_multiclass

SHAPE = (32, 64)
# Absent from every ground truth: train (31) never predicted either (NaN), bus (28) predicted
# (IoU 0); sky (23) absent from truth and prediction alike (category sky NaN).
NEVER_TRUE = (23, 28, 31)


def official_scores(
    pairs: list[tuple[np.ndarray, np.ndarray]],
    tmp_path: Path,
    instances: list[np.ndarray] | None = None,
) -> dict[str, Any]:
    """The official script's result dict for (prediction, truth) label-id pairs written as PNGs
    (with `instances`, their *_instanceIds.png files too, and iIoU)."""
    args = official.CArgs()
    args.evalInstLevelScore = instances is not None
    args.avgClassSize = official.args.avgClassSize
    args.evalPixelAccuracy = False
    args.quiet = True
    args.JSONOutput = False
    args.exportFile = str(tmp_path / "result.json")
    predictions, truths = [], []
    for index, (pred, truth) in enumerate(pairs):
        stem = f"city_{index:06d}_000019"
        truth_file = tmp_path / "gtFine" / "val" / "city" / f"{stem}_gtFine_labelIds.png"
        pred_file = tmp_path / "results" / f"{stem}_pred.png"
        for path, array in ((truth_file, truth), (pred_file, pred)):
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array.astype(np.uint8)).save(path)
        if instances is not None:
            name = truth_file.name.replace("labelIds", "instanceIds")
            Image.fromarray(instances[index].astype(np.uint16)).save(truth_file.with_name(name))
        predictions.append(str(pred_file))
        truths.append(str(truth_file))
    return official.evaluateImgLists(predictions, truths, args)


def synthetic_truths(rng: np.random.Generator) -> list[np.ndarray]:
    """Three label-id images, each drawn from its own subset of the ids (ignored ids 0..6
    included), so that some classes are missing from some images."""
    allowed = np.setdiff1d(np.arange(34), NEVER_TRUE)
    truths = []
    for _ in range(3):
        subset = rng.choice(allowed, size=14, replace=False)
        truths.append(rng.choice(subset, size=SHAPE))
    return truths


def noisy(truth: np.ndarray, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`truth` with a third of its pixels replaced by draws from `values`."""
    swap = rng.random(truth.shape) < 1 / 3
    return np.where(swap, rng.choice(values, size=truth.shape), truth)


def assert_same(ours: dict[str, float], theirs: dict[str, float], names: tuple[str, ...]) -> None:
    assert list(ours) == list(names)
    for name in names:
        if math.isnan(theirs[name]):
            assert math.isnan(ours[name]), name
        else:
            assert ours[name] == pytest.approx(theirs[name], abs=1e-9), name


def test_label_id_predictions_score_as_the_official_script(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    truths = synthetic_truths(rng)
    # Predictions may be any label id, ignored ones included, except train (never predicted).
    predicted = np.setdiff1d(np.arange(34), [23, 31])
    pairs = [(noisy(truth, predicted, rng), truth) for truth in truths]
    theirs = official_scores(pairs, tmp_path)
    ours = cityscapes_scores(sum(label_id_confusion(pred, truth) for pred, truth in pairs))
    assert ours.class_iou is not None
    assert_same(ours.class_iou, theirs["classScores"], CLASS_NAMES)
    assert_same(ours.category_iou, theirs["categoryScores"], CATEGORY_NAMES)
    assert math.isnan(ours.class_iou["train"]) and ours.class_iou["bus"] == 0.0
    assert math.isnan(ours.category_iou["sky"])
    assert ours.miou == pytest.approx(theirs["averageScoreClasses"], abs=1e-9)
    assert ours.category_miou == pytest.approx(theirs["averageScoreCategories"], abs=1e-9)
    ignored = [name for name, score in theirs["classScores"].items() if name not in CLASS_NAMES]
    assert len(ignored) == 34 - 19 and all(math.isnan(theirs["classScores"][n]) for n in ignored)


def synthetic_instances(truth: np.ndarray) -> np.ndarray:
    """Instance ids of a label-id image: pixels of instance classes (24..33) split into one
    instance per 16-column band, the first band a group without instances (id = label id)."""
    band = np.broadcast_to(np.arange(truth.shape[1]) // 16, truth.shape)
    instance = (truth >= 24) & (band > 0)
    return np.where(instance, truth.astype(np.int64) * 1000 + band, truth)


def test_instance_level_iiou_scores_as_the_official_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The script's instance code calls np.in1d, which numpy 2.4 removed; np.isin is its successor.
    def in1d(values: np.ndarray, test: Any, invert: bool = False) -> np.ndarray:
        return np.isin(values, test, invert=invert).ravel()

    monkeypatch.setattr(np, "in1d", in1d, raising=False)
    rng = np.random.default_rng(4)
    truths = synthetic_truths(rng)
    instances = [synthetic_instances(truth) for truth in truths]
    pairs = [(noisy(truth, np.setdiff1d(np.arange(34), [23, 31]), rng), truth) for truth in truths]
    theirs = official_scores(pairs, tmp_path, instances)
    matrix = sum(label_id_confusion(pred, truth) for pred, truth in pairs)
    counts = instance_counts(pairs[0][0], instances[0])
    for (pred, _), ids in zip(pairs[1:], instances[1:]):
        counts = counts + instance_counts(pred, ids)
    ours = cityscapes_iiou(matrix, counts)
    names = tuple(n for n in MEAN_INSTANCE_SIZE if n not in ("caravan", "trailer"))
    assert ours.class_iou is not None
    assert_same(ours.class_iou, theirs["classInstScores"], names)
    assert_same(ours.category_iou, theirs["categoryInstScores"], ("human", "vehicle"))
    assert math.isnan(ours.class_iou["train"]) and ours.class_iou["bus"] == 0.0
    assert ours.miou == pytest.approx(theirs["averageScoreInstClasses"], abs=1e-9)
    assert ours.category_miou == pytest.approx(theirs["averageScoreInstCategories"], abs=1e-9)


def test_a_train_id_model_scores_as_the_official_script(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    mapping = cityscapes_mapping("train_ids")
    truths = synthetic_truths(rng)
    preds = [noisy(mapping.apply(t.astype(np.uint8)) % 255, np.arange(19), rng) for t in truths]
    preds = [np.where(pred == 16, 15, pred) for pred in preds]  # train (16) never predicted
    theirs = official_scores(
        [(to_label_ids(p, mapping), t) for p, t in zip(preds, truths)], tmp_path
    )
    matrix = sum(
        confusion_matrix(p, mapping.apply(t.astype(np.uint8)), 19) for p, t in zip(preds, truths)
    )
    summary = summarize_multiclass(matrix, mapping.names)
    assert summary["miou"] == pytest.approx(theirs["averageScoreClasses"], abs=1e-9)
    seglab_iou = {n: s["iou"] for n, s in summary["per_class"].items()}  # type: ignore[attr-defined]
    assert_same(
        {n: math.nan if v is None else v for n, v in seglab_iou.items()},
        theirs["classScores"],
        CLASS_NAMES,
    )
    ours = scores_from_class_matrix(matrix, mapping)
    assert ours.class_iou is not None
    assert_same(ours.class_iou, theirs["classScores"], CLASS_NAMES)
    assert_same(ours.category_iou, theirs["categoryScores"], CATEGORY_NAMES)
    assert ours.category_miou == pytest.approx(theirs["averageScoreCategories"], abs=1e-9)


@pytest.mark.parametrize("void", ["ignore", "class"])
def test_a_category_model_scores_as_the_official_script(tmp_path: Path, void: str) -> None:
    rng = np.random.default_rng(2)
    trained = cityscapes_mapping("categories", void)  # type: ignore[arg-type]
    truths = synthetic_truths(rng)
    evaluated = benchmark_mapping(trained)
    classes = np.arange(trained.num_classes)
    preds = [noisy(trained.apply(t.astype(np.uint8)) % 255, classes, rng) for t in truths]
    sky = trained.names.index("sky")
    preds = [np.where(pred == sky, sky - 1, pred) for pred in preds]
    theirs = official_scores(
        [(to_label_ids(p, trained), t) for p, t in zip(preds, truths)], tmp_path
    )
    matrix = sum(
        confusion_matrix(p, evaluated.apply(t.astype(np.uint8)), trained.num_classes)
        for p, t in zip(preds, truths)
    )
    ours = scores_from_class_matrix(matrix, trained)
    assert ours.class_iou is None
    assert_same(ours.category_iou, theirs["categoryScores"], CATEGORY_NAMES)
    assert ours.category_miou == pytest.approx(theirs["averageScoreCategories"], abs=1e-9)
    if void == "ignore":  # seglab's own mIoU on the benchmark ground truth is the official one
        summary = summarize_multiclass(matrix, trained.names)
        assert summary["miou"] == pytest.approx(theirs["averageScoreCategories"], abs=1e-9)


def test_golden_two_by_two_images_computed_by_hand() -> None:
    # road, road / car, unlabeled; the prediction on the unlabeled pixel does not count.
    scores = cityscapes_scores(
        label_id_confusion(np.array([[7, 8], [26, 7]]), np.array([[7, 7], [26, 0]]))
    )
    assert scores.class_iou is not None
    assert scores.class_iou["road"] == 0.5  # tp 1, fn 1 (as sidewalk), fp 0
    assert scores.class_iou["sidewalk"] == 0.0 and scores.class_iou["car"] == 1.0
    assert math.isnan(scores.class_iou["person"])
    assert scores.miou == 0.5  # (0.5 + 0 + 1) / 3
    assert scores.category_iou["flat"] == 1.0 and scores.category_iou["vehicle"] == 1.0
    assert scores.category_miou == 1.0
    # road predicted as parking (an ignored label) is wrong for the class and the category;
    # car predicted as truck is wrong for the class, right for the category.
    scores = cityscapes_scores(
        label_id_confusion(np.array([[9, 7], [27, 26]]), np.array([[7, 9], [26, 26]]))
    )
    assert scores.class_iou is not None
    assert scores.class_iou["road"] == 0.0  # tp 0, fn 1; the road on parking is no fp
    assert scores.class_iou["car"] == 0.5 and scores.class_iou["truck"] == 0.0
    assert scores.miou == pytest.approx(1 / 6)
    assert scores.category_iou["flat"] == 0.0 and scores.category_iou["vehicle"] == 1.0
    assert scores.category_miou == 0.5


def test_the_benchmark_mapping_ignores_what_the_benchmark_ignores() -> None:
    categories = cityscapes_mapping("categories")
    ids = np.array([[7, 9, 26, 29, 0]], np.uint8)  # road, parking, car, caravan, unlabeled
    assert categories.apply(ids).tolist() == [[0, 0, 6, 6, 255]]
    assert benchmark_mapping(categories).apply(ids).tolist() == [[0, 255, 6, 255, 255]]
    with_void = cityscapes_mapping("categories", void="class")
    assert benchmark_mapping(with_void).apply(ids).tolist() == [[1, 0, 7, 0, 0]]
    train_ids = cityscapes_mapping("train_ids")
    assert np.array_equal(benchmark_mapping(train_ids).lut, train_ids.lut)
    assert cityscapes_kind(train_ids) == ("train_ids", "ignore")


def test_bad_label_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="holds 40, not a Cityscapes label id"):
        label_id_confusion(np.array([[40]]), np.array([[7]]))
    with pytest.raises(ValueError, match="shape"):
        label_id_confusion(np.zeros((2, 2), int), np.zeros((2, 3), int))


def test_seglab_evaluate_of_a_category_bundle_gives_the_official_scores(tmp_path: Path) -> None:
    from seglab.evaluation.segmentation import evaluate
    from seglab.inference.loading import load_predictor

    bundle = Path(__file__).parents[1] / "bundles" / "multiclass"  # 7 categories, void ignored
    predictor = load_predictor(bundle)
    mapping = LabelMapping.from_dict(predictor.metadata["labels"])
    rng = np.random.default_rng(3)
    pairs = []
    for index, truth in enumerate(synthetic_truths(rng)[:2]):  # parking, caravan ... included
        stem = f"city_{index:06d}_000019"
        image = rng.integers(0, 256, (*SHAPE, 3), dtype=np.uint8)
        for folder, name, array in (
            ("leftImg8bit", f"{stem}_leftImg8bit.png", image),
            ("gtFine", f"{stem}_gtFine_labelIds.png", truth.astype(np.uint8)),
        ):
            path = tmp_path / "data" / folder / "test" / "city" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(path)
        pairs.append((to_label_ids(predictor.predict(image).mask, mapping), truth))
    result = evaluate(predictor, tmp_path / "data", tmp_path / "eval", progress=False)
    theirs = official_scores(pairs, tmp_path / "official")
    assert "cityscapes_miou" not in result.metrics  # categories say nothing of the 19 classes
    expected = theirs["averageScoreCategories"]
    assert result.metrics["cityscapes_category_miou"] == pytest.approx(expected, abs=1e-9)
    assert result.metrics["miou"] == pytest.approx(expected, abs=1e-9)
    ours = {
        k: math.nan if v is None else v
        for k, v in result.metrics["cityscapes"]["category_iou"].items()
    }
    assert_same(ours, theirs["categoryScores"], CATEGORY_NAMES)
    assert "Cityscapes benchmark, per category" in (tmp_path / "eval" / "report.html").read_text()
