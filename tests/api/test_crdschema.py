from sampan.api.crdschema import StructuralSchema, apply_schema_defaults, check_structural, prune, validate_cr

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["image"],
            "properties": {
                "image": {"type": "string", "minLength": 3, "pattern": "^[a-z]"},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                "color": {"type": "string", "enum": ["red", "green"]},
                "port": {"x-kubernetes-int-or-string": True},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                             "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                "note": {"type": "string", "nullable": True},
                "policy": {"type": "object", "default": {}, "properties": {
                    "mode": {"type": "string", "default": "Auto"}}},
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def cr(**spec) -> dict:
    return {"apiVersion": "ex.io/v1", "kind": "App", "metadata": {"name": "a", "namespace": "d"}, "spec": spec}


def test_prune_unknown_fields_keeps_preserved_and_embedded():
    obj = cr(image="nginx", bogus=1, extra={"anything": {"deep": 1}}, labels={"x": "y"},
             template={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "junk": 1},
                       "spec": {"a": "b", "c": "d"}})
    obj["top"] = True
    pruned = prune(obj, SCHEMA)
    assert sorted(pruned) == ["spec.bogus", "spec.template.metadata.junk", "spec.template.spec.c", "top"]
    assert obj["spec"]["extra"] == {"anything": {"deep": 1}}
    assert obj["spec"]["template"]["apiVersion"] == "v1" and obj["spec"]["template"]["metadata"] == {"name": "p"}
    assert obj["metadata"]["name"] == "a"


def test_defaults_fill_missing_and_null():
    obj = cr(image="nginx", policy=None, note=None)
    apply_schema_defaults(obj, SCHEMA)
    assert obj["spec"]["replicas"] == 1
    assert obj["spec"]["policy"] == {"mode": "Auto"}
    assert obj["spec"]["note"] is None  # nullable keeps null


def test_validation_messages():
    obj = cr(replicas=20, color="pink", port="http", tags=["a", "b", "c"], image="1x")
    found = validate_cr(obj, SCHEMA)
    causes = {c["field"]: c for c in found}
    assert causes["spec.replicas"]["message"] == "Invalid value: 20: spec.replicas in body should be less than or equal to 10"
    assert causes["spec.color"]["message"] == 'Unsupported value: "pink": supported values: "red", "green"'
    assert causes["spec.tags"]["message"] == "Too many: 3: must have at most 2 items"
    image = [c["message"] for c in found if c["field"] == "spec.image"]
    assert image == ['Invalid value: "1x": spec.image in body should be at least 3 chars long',
                     "Invalid value: \"1x\": spec.image in body should match '^[a-z]'"]
    assert "spec.port" not in causes
    missing = validate_cr(cr(replicas="x"), SCHEMA)
    assert {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.image"} in missing
    assert {"reason": "FieldValueTypeInvalid", "field": "spec.replicas",
            "message": 'Invalid value: "string": spec.replicas in body must be of type integer: "string"'} in missing


def test_structural_schema_wrapper_round_trip():
    s = StructuralSchema(SCHEMA)
    obj = cr(image="nginx", junk=1)
    assert s.prune(obj) == ["spec.junk"]
    s.apply_defaults(obj)
    assert s.validate(obj) == []


def test_check_structural():
    assert check_structural(SCHEMA) == []
    bad = {"type": "object", "properties": {
        "spec": {"properties": {"a": {"type": "string"}}},
        "list": {"type": "array"},
        "io": {"type": "string", "x-kubernetes-int-or-string": True},
        "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
    }}
    errs = check_structural(bad, "spec.versions[0].schema.openAPIV3Schema")
    assert "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields" in errs
    assert "spec.versions[0].schema.openAPIV3Schema.properties[list].items: Required value: must be specified" in errs
    assert any("x-kubernetes-int-or-string" in e for e in errs)
    assert any("must not specify anything other than name and generateName" in e for e in errs)
