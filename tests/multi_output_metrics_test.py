"""Per-head metrics of a multi-output model (`metrics.multi_output_metrics`) against scikit-learn, head by head."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, jaccard_score, recall_score, roc_auc_score

from imbal_keras.errors import UserInputError
from imbal_keras.metrics import multi_output_metrics

RNG = np.random.default_rng(3)
N = 300
MAIN = RNG.choice(3, size=N, p=[0.7, 0.2, 0.1])
MAIN_P = RNG.dirichlet(np.ones(3), size=N) + 0.8 * np.eye(3)[MAIN]
MAIN_P /= MAIN_P.sum(axis=1, keepdims=True)
AUX = (RNG.uniform(size=N) < 0.1).astype(np.float32)
AUX_P = np.clip(0.3 * AUX + RNG.uniform(0, 0.7, size=N), 0, 1)[:, None].astype(np.float32)  # a sigmoid's (N, 1)
TAGS = (RNG.uniform(size=(N, 4)) < [0.3, 0.1, 0.05, 0.02]).astype(int)
TAGS_P = np.clip(0.4 * TAGS + RNG.uniform(0, 0.6, size=TAGS.shape), 0, 1)


def test_each_head_matches_scikit_learn():
    y = {"main": MAIN, "aux": AUX[:, None], "tags": TAGS}
    report = multi_output_metrics(y, {"main": MAIN_P, "aux": AUX_P, "tags": TAGS_P})
    assert set(report) == {"main", "aux", "tags"}
    main = report["main"]
    expected_ap = np.mean([average_precision_score(np.equal(MAIN, c), MAIN_P[:, c]) for c in range(3)])
    assert main["average_precision"] == pytest.approx(expected_ap, abs=1e-12)
    recalls = recall_score(MAIN, MAIN_P.argmax(axis=1), average=None)
    assert [main[f"recall_class_{c}"] for c in range(3)] == pytest.approx(recalls, abs=1e-12)
    aux = report["aux"]
    assert aux["average_precision"] == pytest.approx(average_precision_score(AUX, AUX_P[:, 0]), abs=1e-9)
    assert aux["roc_auc"] == pytest.approx(roc_auc_score(AUX, AUX_P[:, 0]), abs=1e-9)
    aux_recalls = recall_score(AUX, AUX_P[:, 0] >= 0.5, average=None)
    assert [aux["recall_class_0"], aux["recall_class_1"]] == pytest.approx(aux_recalls, abs=1e-12)
    tags = report["tags"]
    assert tags["macro_average_precision"] == pytest.approx(average_precision_score(TAGS, TAGS_P), abs=1e-12)
    assert tags["micro_average_precision"] == pytest.approx(
        average_precision_score(TAGS, TAGS_P, average="micro"), abs=1e-12
    )


def test_list_heads_dense_head_and_a_chosen_subset():
    masks = RNG.choice(3, size=(6, 5, 5), p=[0.8, 0.15, 0.05])
    mask_p = RNG.dirichlet(np.ones(3), size=(6, 5, 5)) + np.eye(3)[masks]
    boxes = RNG.normal(size=(N, 4))
    report = multi_output_metrics([MAIN, masks, boxes], [MAIN_P, mask_p, boxes], heads=[0, 1])
    assert set(report) == {0, 1}
    iou = jaccard_score(masks.ravel(), mask_p.argmax(axis=-1).ravel(), average=None)
    assert [report[1][f"iou_class_{c}"] for c in range(3)] == pytest.approx(iou, abs=1e-12)
    assert report[0]["balanced_accuracy"] == pytest.approx(
        recall_score(MAIN, MAIN_P.argmax(axis=1), average="macro"), abs=1e-12
    )


@pytest.mark.parametrize(
    ("y", "p", "kwargs", "message"),
    [
        ({"main": MAIN}, {"aux": AUX_P}, {}, r"^heads names 'main', which y_true or predictions lacks; "),
        ({"main": MAIN}, {"main": MAIN_P[:-1]}, {}, r"^head 'main' has 300 labels but 299 predictions. "),
        ({"boxes": RNG.normal(size=N)}, {"boxes": RNG.normal(size=N)}, {}, r"^head 'boxes' is not a classification"),
        (MAIN, MAIN_P, {}, r"^y_true must be a non-empty dict"),
        ({"main": MAIN}, {"main": MAIN_P}, {"heads": ["aux"]}, r"^heads names 'aux'"),
    ],
)
def test_refusals_in_one_line(y, p, kwargs, message):
    with pytest.raises(UserInputError, match=message) as error:
        multi_output_metrics(y, p, **kwargs)
    assert "\n" not in str(error.value)
