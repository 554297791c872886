"""Documentation schemas for solve requests and answers.

Solver bodies are decoded and validated by `formats` (typed msgspec decoding and array-level
checks, with exact JSON pointers for every error); these schemas describe the same contract in the
OpenAPI document.
"""

from __future__ import annotations

import marshmallow as ma


class PairSchema(ma.Schema):
    color = ma.fields.Integer(required=True, metadata={"minimum": 1})
    finish = ma.fields.String(required=True, metadata={"enum": ["glossy", "matte"]})


class V2ProblemSchema(ma.Schema):
    colors = ma.fields.Integer(required=True, metadata={"minimum": 1, "example": 5})
    customers = ma.fields.List(
        ma.fields.List(ma.fields.Nested(PairSchema), metadata={"minItems": 1}),
        required=True,
        metadata={"description": "one list of liked (color, finish) pairs per customer"},
    )


class LegacyProblemSchema(ma.Schema):
    colors = ma.fields.Integer(required=True, metadata={"minimum": 1})
    customers = ma.fields.Integer(required=True, metadata={"minimum": 1})
    demands = ma.fields.List(
        ma.fields.List(ma.fields.Integer()),
        required=True,
        metadata={"description": "per customer [T, X1, Y1, ..., XT, YT]; Y is 0 glossy, 1 matte"},
    )


class ForcingSchema(ma.Schema):
    color = ma.fields.Integer()
    forced_by_customer = ma.fields.Integer()


class ExplanationSchema(ma.Schema):
    customer = ma.fields.Integer(metadata={"description": "the customer that cannot be satisfied"})
    chain = ma.fields.List(ma.fields.Nested(ForcingSchema))
    message = ma.fields.String()


class SolveResultSchema(ma.Schema):
    status = ma.fields.String(metadata={"enum": ["solved", "impossible"]})
    solution = ma.fields.List(ma.fields.Integer(), metadata={"description": "0 glossy, 1 matte"})
    matte_count = ma.fields.Integer()
    explanation = ma.fields.Nested(ExplanationSchema)
    input_format = ma.fields.String(metadata={"enum": ["v2", "legacy"]})


class BatchItemSchema(SolveResultSchema):
    index = ma.fields.Integer()
    status = ma.fields.String(metadata={"enum": ["solved", "impossible", "invalid"]})
    errors = ma.fields.List(ma.fields.Dict())
    detail = ma.fields.String()


_PROBLEM = {"oneOf": [{"$ref": "#/components/schemas/V2Problem"},
                      {"$ref": "#/components/schemas/LegacyProblem"}]}
SOLVE_BODY = {"required": True, "content": {"application/json": {"schema": _PROBLEM}}}

BATCH_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"type": "array", "items": _PROBLEM}
        },
        "text/plain": {"schema": {"type": "string", "description": "Code Jam input file"}},
    },
}
