"""SMPL-format body model (filled in by the body-model work)."""


class BodyModel:
    pass
