"""The loaders read files in the public layout as the public readers do (issue 20, rows 1-8).

Every fixture is written here in the public layout; each expected value is
derived by hand from the public readers' rules (noted beside it).
"""
import copy
import logging

import numpy as np
import pytest
import torch

from hybrik_fast import BodyModel
from hybrik_fast.data import COCO2D, MPIINF3DHP, PW3D, Human36M
from hybrik_fast.data.annotations import AnnotationError
from hybrik_fast.data.transforms import square_box

from dataset_support import S, coco_db, h36m_db, hp3d_db, person, pw3d_db, write_json, write_roots


@pytest.fixture(scope="module")
def people():
    body = BodyModel.synthetic(dtype=torch.float64)
    return [person(body, seed) for seed in (1, 2)]


@pytest.fixture(scope="module")
def roots(tmp_path_factory, people):
    return write_roots(tmp_path_factory.mktemp("layout"), people)


def _with_box(db, bbox, size=(64, 48)):
    """A copy of ``db`` whose first record has ``bbox`` and an image of ``size`` (w, h)."""
    db = copy.deepcopy(db)
    db["annotations"][0]["bbox"] = bbox
    db["images"][0].update(width=size[0], height=size[1])
    return db


# ---------------------------------------------------------------- rows 1 and 2: the crop

def test_h36m_crops_the_box_itself_and_3dpw_pads_it(tmp_path, people):
    # xywh (10, 5, 21, 31) ends at (10 + 20, 5 + 30): w = 20, h = 30, centre (20, 20)
    h36m = Human36M(annotation=write_json(tmp_path / "h.json", _with_box(h36m_db(people), [10, 5, 21, 31])),
                    image_dir=tmp_path, image_size=S)
    pw3d = PW3D(annotation=write_json(tmp_path / "p.json", _with_box(pw3d_db(people), [10, 5, 21, 31])),
                image_dir=tmp_path, image_size=S)
    for ds, side in ((h36m, 30.0), (pw3d, 37.5)):               # scale 1.0 (H36M) / 1.25
        centre, got = square_box(ds.records[0].bbox, ds.padding)
        assert np.allclose(centre, [20.0, 20.0]) and got == pytest.approx(side)


def test_box_off_the_frame_is_clipped(tmp_path, people):
    # (−20, 10, 50, 60) in a 64×48 image: x in [0, min(29, 63)], y in [10, min(69, 47)]
    db = _with_box(pw3d_db(people), [-20, 10, 50, 60])
    ds = PW3D(annotation=write_json(tmp_path / "p.json", db), image_dir=tmp_path, image_size=S)
    assert np.allclose(ds.records[0].bbox, [0, 10, 29, 37])
    centre, side = square_box(ds.records[0].bbox, ds.padding)
    assert np.allclose(centre, [14.5, 28.5]) and side == pytest.approx(37 * 1.25)


def test_crop_of_a_sample_follows_the_public_box(roots):
    ds = Human36M(roots["h36m"], image_size=S, train=False)
    x, y, w, h = ds.records[0].bbox
    s = ds[0]
    side = max(w, h)                                             # padding 1.0
    assert torch.allclose(s["bbox"], torch.tensor([x + w / 2 - side / 2, y + h / 2 - side / 2,
                                                   side, side], dtype=torch.float32), atol=1e-4)


# ---------------------------------------------------------------- rows 3-5: skipped records

def test_h36m_block_listed_sequences_are_skipped_and_counted(tmp_path, people):
    db = h36m_db(people * 2)
    db["images"][1]["file_name"] = "s_09_act_05_subact_02_ca_01/s_09_act_05_subact_02_ca_01_000001.jpg"
    db["images"][3]["file_name"] = "s_09_act_13_subact_01_ca_04/x.jpg"
    ds = Human36M(annotation=write_json(tmp_path / "h.json", db), image_dir=tmp_path)
    assert len(ds) == 2 and sum(ds.skipped_records.values()) == 2
    assert ds.records[1].image_path.endswith("img_2.png")       # record 2 of the file


def test_3dpw_box_under_5_px_after_clipping_is_skipped(tmp_path, people):
    # x from 60 to min(60 + 29, 63): 3 px wide, skipped; the other record stays
    db = _with_box(pw3d_db(people), [60, 10, 30, 30])
    ds = PW3D(annotation=write_json(tmp_path / "p.json", db), image_dir=tmp_path)
    assert len(ds) == 1 and ds.skipped_records == {"box under 5 px after clipping": 1}
    # exactly 5 px (x from 10 to 14) is kept: the public test is xmin > xmax − 5
    ds = PW3D(annotation=write_json(tmp_path / "q.json", _with_box(pw3d_db(people), [10, 10, 6, 30])),
              image_dir=tmp_path)
    assert len(ds) == 2


def test_coco_zero_size_box_is_skipped_not_an_error(tmp_path, people):
    db = coco_db(people)
    db["annotations"][0]["bbox"] = [5, 5, 0, 20]
    db["annotations"][1]["bbox"] = [5, 5, 1, 20]          # ends at x + max(1 − 1, 0): empty too
    ds = COCO2D(annotation=write_json(tmp_path / "c.json", db), image_dir=tmp_path)
    assert len(ds) == 0 and ds.skipped_records["empty box"] == 2


def test_malformed_record_is_still_an_error(tmp_path, people):
    db = coco_db(people)
    db["annotations"][1]["bbox"] = [5, 5, "wide", 20]
    with pytest.raises(AnnotationError, match=r"record 1: field 'bbox'"):
        COCO2D(annotation=write_json(tmp_path / "c.json", db), image_dir=tmp_path)


# ---------------------------------------------------------------- row 6: joint maps

def test_joint_maps_public_by_default_extended_on_request(roots):
    public = [0, 4, 5, 7, 8, 12, 16, 17, 18, 19, 20, 21]            # the public 3DHP -> SMPL map
    ds = MPIINF3DHP(roots["3dhp"], image_size=S)
    assert np.flatnonzero(ds.records[0].xyz_weight).tolist() == public
    ext = MPIINF3DHP(roots["3dhp"], image_size=S, joint_map="extended")
    assert np.flatnonzero(ext.records[0].xyz_weight).tolist() == sorted(public + [1, 2, 24, 27, 28])
    coco, coco_ext = COCO2D(roots["coco"]), COCO2D(roots["coco"], joint_map="extended")
    assert not coco.records[0].uv_weight[[1, 2]].any() and coco_ext.records[0].uv_weight[[1, 2]].all()
    with pytest.raises(ValueError, match="joint_map"):
        COCO2D(roots["coco"], joint_map="all")


# ---------------------------------------------------------------- row 7: which file

@pytest.mark.parametrize("cls,folder,default,other", [
    (Human36M, "annotations", "Sample_trainmin_train_Human36M_smpl_leaf_twist_protocol_2.json",
     "Sample_5_train_Human36M_smpl_leaf_twist_protocol_2.json"),
    (MPIINF3DHP, "", "annotation_mpi_inf_3dhp_train_v2.json", "annotation_mpi_inf_3dhp_train.json"),
    (PW3D, "json", "3DPW_train_new.json", "3DPW_train.json"),
])
def test_several_candidates_take_the_public_default_and_say_so(tmp_path, people, caplog, cls, folder,
                                                               default, other):
    make = {Human36M: h36m_db, MPIINF3DHP: hp3d_db, PW3D: pw3d_db}[cls]
    write_json(tmp_path / folder / default, make(people))
    write_json(tmp_path / folder / other, make(people[:1]))
    with caplog.at_level(logging.INFO, logger="hybrik_fast.data"):
        ds = cls(tmp_path)
    assert ds.annotation.endswith(default) and len(ds) == 2
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and default in warning[0] and other in warning[0]
    explicit = cls(tmp_path, annotation=tmp_path / folder / other)
    assert len(explicit) == 1


def test_several_candidates_without_the_default_is_an_error(tmp_path, people):
    for name in ("3DPW_train_a.json", "3DPW_train_b.json"):
        write_json(tmp_path / "json" / name, pw3d_db(people))
    with pytest.raises(FileNotFoundError, match="3DPW_train_a.json.*annotation="):
        PW3D(tmp_path)


# ---------------------------------------------------------------- row 8: pairing images

def test_images_without_id_are_paired_by_position(tmp_path, people):
    db = pw3d_db(people)
    for img in db["images"]:
        del img["id"]
    db["images"].reverse()                                       # position, not the dangling ids
    ds = PW3D(annotation=write_json(tmp_path / "p.json", db), image_dir=tmp_path)
    assert [r.image_path[-9:] for r in ds.records] == ["00001.jpg", "00000.jpg"]


def test_two_images_with_one_id_is_an_error(tmp_path, people):
    db = pw3d_db(people)
    db["images"][1]["id"] = db["images"][0]["id"]
    with pytest.raises(AnnotationError, match=r"images\[1\].*'id'.*images\[0\]"):
        PW3D(annotation=write_json(tmp_path / "p.json", db), image_dir=tmp_path)


def test_h36m_pairs_by_position_whatever_the_ids(tmp_path, people):
    db = h36m_db(people)
    for k, (img, ann) in enumerate(zip(db["images"], db["annotations"])):
        img["id"], ann["image_id"] = k, 1 - k                    # crossed ids: the public zip ignores them
    ds = Human36M(annotation=write_json(tmp_path / "h.json", db), image_dir=tmp_path)
    assert [r.image_path[-9:] for r in ds.records] == ["img_0.png", "img_1.png"]
    assert np.allclose(ds.records[0].betas, people[0]["betas"])


# ---------------------------------------------------------------- evaluation joints

def test_3dhp_test_joints_in_the_h36m_order(tmp_path, people):
    db = hp3d_db(people)
    kp = np.arange(17 * 3, dtype=np.float64).reshape(17, 3) + 1000.0     # mm, joint k = 1000 + 3k..
    for a in db["annotations"]:
        a["keypoints_cam"] = kp.tolist()
    ds = MPIINF3DHP(annotation=write_json(tmp_path / "t.json", db), image_dir=tmp_path, split="test")
    public = [14, 11, 12, 13, 8, 9, 10, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4]   # hp3d.py EVAL_JOINTS_17
    assert np.allclose(ds.records[0].joints_h36m, kp[public] / 1000.0)
    assert ds.records[0].xyz_weight[0] == 1                              # pelvis (test index 14)
