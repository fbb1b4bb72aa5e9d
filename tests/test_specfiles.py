"""The spec data files, read afresh: the catalog, the drug table and the profiles parse to what the loaders
return, and every way a file can be wrong is a SpecError that names it (never a default, never a crash)."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from typing import Any

import pytest

from itbproto.core.safety.catalog import Param, parse_catalog
from itbproto.core.therapy.profile import DeviceProfile, Drug, from_mapping
from itbproto.core.wire import PatientGroup, PumpKind
from itbproto.errors import SpecError
from itbproto.io.specfiles import load_drug, load_profile, load_rules, profile_ids, specs_dir


def toml(name: str) -> dict[str, Any]:
    with (specs_dir() / name).open("rb") as f:
        return tomllib.load(f)


def test_the_catalog_parses_to_what_the_loader_returns() -> None:
    catalog = parse_catalog(toml("safety-rules.toml"), "safety-rules.toml")
    assert catalog == load_rules()
    assert len(catalog.ids) == 43
    assert sum(rule.acknowledgeable for rule in catalog) == 10
    assert catalog["TITR-002"].params == (Param("interval_s", 86_400, "higher", 604_800),)
    assert catalog["DOSE-001"].level == "limit"
    assert catalog["STOP-002"].level == "acknowledge"
    with pytest.raises(KeyError):
        catalog["NOPE-001"]


def _first_rule(data: dict[str, Any]) -> dict[str, Any]:
    rule: dict[str, Any] = data["rule"][0]
    return rule


def _param(data: dict[str, Any]) -> dict[str, Any]:
    with_params = next(rule for rule in data["rule"] if rule.get("params"))
    spec: dict[str, Any] = next(iter(with_params["params"].values()))
    return spec


BROKEN_CATALOGS: dict[str, Callable[[dict[str, Any]], object]] = {
    "a missing field": lambda d: _first_rule(d).pop("source"),
    "an unknown field": lambda d: _first_rule(d).update(owner="me"),
    "an unknown hazard": lambda d: _first_rule(d).update(hazard="boredom"),
    "an unknown level": lambda d: _first_rule(d).update(level="advice"),
    "a default that is not an integer": lambda d: _param(d).update(default=1.5),
    "a direction that is neither": lambda d: _param(d).update(tighten="sideways"),
    "a limit that is not an integer": lambda d: _param(d).update(limit="7"),
    "an unknown parameter field": lambda d: _param(d).update(unit="s"),
    "a repeated ID": lambda d: d["rule"].append(copy.deepcopy(d["rule"][0])),
    "no rules": lambda d: d.update(rule=[]),
}


@pytest.mark.parametrize("broken", BROKEN_CATALOGS)
def test_a_broken_catalog_is_refused(broken: str) -> None:
    data = toml("safety-rules.toml")
    BROKEN_CATALOGS[broken](data)
    with pytest.raises(SpecError, match=r"safety-rules\.toml"):
        parse_catalog(data, "safety-rules.toml")


@pytest.mark.parametrize(
    ("tighten", "value", "tighter", "within"),
    [
        ("lower", 9, True, True),
        ("lower", 10, True, True),
        ("lower", 11, False, True),
        ("lower", 4, True, False),
        ("lower", 5, True, True),
        ("higher", 11, True, True),
        ("higher", 9, False, True),
        ("higher", 15, True, True),
        ("higher", 16, True, False),
    ],
)
def test_parameters_tighten_one_way_and_only_so_far(
    tighten: str, value: int, tighter: bool, within: bool
) -> None:
    param = Param("x", 10, tighten, 5 if tighten == "lower" else 15)  # type: ignore[arg-type]
    assert param.is_tighter_or_equal(value) is tighter
    assert param.within_limit(value) is within
    assert Param("x", 10, "lower").within_limit(-(10**9))


@pytest.mark.parametrize("profile", profile_ids())
def test_each_profile_parses_to_what_the_loader_returns(profile: str) -> None:
    parsed = from_mapping(DeviceProfile, toml(f"profiles/{profile}.toml"), profile)
    assert parsed == load_profile(profile)
    assert parsed.id == profile
    assert parsed.thresholds.low_reservoir_ul == parsed.low_reservoir_ul
    assert parsed.thresholds.reannunciate_s == parsed.reannunciate_s


def test_profiles_say_which_pump_they_are() -> None:
    kinds = {profile: load_profile(profile).pump_kind for profile in profile_ids()}
    assert kinds == {"itb-20": PumpKind.MOTOR, "itb-40": PumpKind.MOTOR, "itbv-20": PumpKind.VALVE}


def test_the_drug_table_parses_to_what_the_loader_returns() -> None:
    drug = from_mapping(Drug, toml("drugs.toml")["baclofen"], "drugs.toml")
    assert drug == load_drug()
    assert drug.concentrations_ug_ml == (50, 500, 1000, 2000)
    assert drug.ceiling_ng_day(PatientGroup.ADULT) == drug.ceiling_adult_ng_day == 2_000_000
    assert drug.ceiling_ng_day(PatientGroup.CHILD) == drug.ceiling_child_ng_day == 1_000_000


BROKEN_PROFILES: dict[str, tuple[str, object]] = {
    "a missing field": ("catheter_ul", None),
    "text for a number": ("pump_path_ul", "130"),
    "a fraction for a number": ("reservoir_capacity_ul", 20_000.5),
    "a number for text": ("model", 20),
    "an unknown pump kind": ("pump_kind", "piston"),
    "a pump kind that is not text": ("pump_kind", 1),
}


@pytest.mark.parametrize("broken", BROKEN_PROFILES)
def test_a_broken_profile_is_refused(broken: str) -> None:
    data = toml("profiles/itb-20.toml")
    name, value = BROKEN_PROFILES[broken]
    if value is None:
        del data[name]
    else:
        data[name] = value
    with pytest.raises(SpecError, match=name):
        from_mapping(DeviceProfile, data, "itb-20.toml")


def test_an_unknown_profile_field_is_refused() -> None:
    data = toml("profiles/itb-20.toml") | {"colour": "blue"}
    with pytest.raises(SpecError, match="colour"):
        from_mapping(DeviceProfile, data, "itb-20.toml")


@pytest.mark.parametrize(
    ("name", "value"), [("concentrations_ug_ml", [50, "500"]), ("screening_doses_ng", 50)]
)
def test_a_drug_list_must_hold_integers(name: str, value: object) -> None:
    data = toml("drugs.toml")["baclofen"] | {name: value}
    with pytest.raises(SpecError, match=name):
        from_mapping(Drug, data, "drugs.toml")


def test_an_unknown_drug_is_refused() -> None:
    with pytest.raises(SpecError, match="morphine"):
        load_drug("morphine")
