"""The intrinsic-function resolver on its own, with fake resources."""

from __future__ import annotations

import pytest

from apigw_local.intrinsics import Resolver, TemplateError


def _resolver(**kwargs):
    resources = {"Fn": "fn-name", "Api": "abcdefghij"}

    def ref(name):
        return resources[name]

    def get_att(name, attribute):
        if name not in resources:
            raise KeyError(name)
        return f"{resources[name]}:{attribute}"

    return Resolver(
        parameters=kwargs.pop("parameters", {"Stage": "dev", "List": ["a", "b"]}),
        pseudo={"AWS::Region": "us-east-1", "AWS::URLSuffix": "amazonaws.com"},
        ref=ref,
        get_att=get_att,
        **kwargs,
    )


def test_ref_getatt_and_sub():
    r = _resolver()
    assert r.resolve({"Ref": "Stage"}, "x") == "dev"
    assert r.resolve({"Ref": "Fn"}, "x") == "fn-name"
    assert r.resolve({"Fn::GetAtt": "Fn.Arn"}, "x") == "fn-name:Arn"
    assert r.resolve({"Fn::GetAtt": ["Fn", "Arn"]}, "x") == "fn-name:Arn"
    assert r.resolve({"Fn::Sub": "${Api}.${AWS::Region}/${Stage}/${Fn.Arn}/${!Keep}"}, "x") == (
        "abcdefghij.us-east-1/dev/fn-name:Arn/${Keep}")
    assert r.resolve({"Fn::Sub": ["${A}-${Stage}", {"A": {"Ref": "Fn"}}]}, "x") == "fn-name-dev"


def test_join_select_split_and_lists():
    r = _resolver()
    assert r.resolve({"Fn::Join": [",", {"Ref": "List"}]}, "x") == "a,b"
    assert r.resolve({"Fn::Select": [1, {"Ref": "List"}]}, "x") == "b"
    assert r.resolve({"Fn::Split": ["|", "a|b|c"]}, "x") == ["a", "b", "c"]
    with pytest.raises(TemplateError, match="out of range"):
        r.resolve({"Fn::Select": [5, ["a"]]}, "x")


def test_conditions_and_no_value():
    r = _resolver(conditions={
        "IsDev": {"Fn::Equals": [{"Ref": "Stage"}, "dev"]},
        "NotDev": {"Fn::Not": [{"Condition": "IsDev"}]},
        "Any": {"Fn::Or": [{"Condition": "NotDev"}, {"Condition": "IsDev"}]},
        "All": {"Fn::And": [{"Condition": "NotDev"}, {"Condition": "IsDev"}]},
    })
    assert r.condition("IsDev") and not r.condition("NotDev")
    assert r.condition("Any") and not r.condition("All")
    value = {
        "a": {"Fn::If": ["IsDev", {"Ref": "AWS::NoValue"}, 1]},
        "b": [1, {"Ref": "AWS::NoValue"}],
    }
    assert r.resolve(value, "x") == {"b": [1]}
    with pytest.raises(TemplateError, match="unknown condition 'Nope'"):
        r.resolve({"Fn::If": ["Nope", 1, 2]}, "where")


def test_errors_carry_the_location():
    r = _resolver()
    unsupported = r"^Res\.Prop: unsupported intrinsic function Fn::Cidr"
    with pytest.raises(TemplateError, match=unsupported):
        r.resolve({"Fn::Cidr": ["10.0.0.0/16", 2, 8]}, "Res.Prop")
    with pytest.raises(TemplateError, match=r"^Res\.Prop\.k: Ref to unknown .* 'Missing'"):
        r.resolve({"k": {"Ref": "Missing"}}, "Res.Prop")
    with pytest.raises(TemplateError, match=r"unknown resource 'Missing'"):
        r.resolve({"Fn::Sub": "${Missing.Arn}"}, "Res.Prop")
    with pytest.raises(TemplateError, match="unsupported pseudo parameter AWS::Whatever"):
        r.resolve({"Ref": "AWS::Whatever"}, "Res.Prop")


def test_rewrite_applies_to_every_resolved_string():
    r = _resolver(rewrite=lambda s: s.replace("abcdefghij.execute-api", "LOCAL"))
    assert r.resolve({"Fn::Sub": "https://${Api}.execute-api.x/dev"}, "x") == "https://LOCAL.x/dev"
    assert r.resolve(["abcdefghij.execute-api"], "x") == ["LOCAL"]


def test_a_property_named_condition_is_not_an_intrinsic():
    r = _resolver()
    assert r.resolve({"Condition": {"StringEquals": {"a": "b"}}}, "x") == {
        "Condition": {"StringEquals": {"a": "b"}}}


def test_find_in_map():
    r = _resolver(mappings={"Stages": {"dev": {"Memory": 256}}})
    assert r.resolve({"Fn::FindInMap": ["Stages", {"Ref": "Stage"}, "Memory"]}, "x") == 256
    with pytest.raises(TemplateError, match="no such entry"):
        r.resolve({"Fn::FindInMap": ["Stages", "prod", "Memory"]}, "x")
