"""English and Simplified Chinese (serving/i18n.py): every declared feature has Chinese words that format like its
English ones, English stays exactly what top_drivers says, and the board's words exist in both languages.

Fast: no training; the drivers are built from made-up contributions.
"""

from __future__ import annotations

import copy
import json
import math
import re

import numpy as np
import pytest

from eqsms.settings import Settings
from features.families import MILESTONE_FAMILIES
from features.registry import DEPARTMENTS, declared, feature_specs
from features.targets import TARGETS, of_scope
from features.targets import target as target_spec
from serving.drivers import describe, top_drivers
from serving.i18n import (
    LANGS,
    UI,
    ZH_DIRECTIONS,
    ZH_FEATURES,
    ZH_OUTCOMES,
    department_name,
    driver_text,
    pick_lang,
    translate_project,
    ui_strings,
    zh_words,
)

DEFAULT = Settings(short_window_days=30, long_window_days=90, recent_weeks=4)  # whatever the environment says
OTHER = Settings(short_window_days=14, long_window_days=60, recent_weeks=2)
SAMPLE = {  # a value of each unit, as a driver carries it
    "count": 3.0,
    "share": 0.25,
    "ratio": 1.125,
    "index": 0.8765,
    "days": 12.0,
    "hours": 7.5,
    "money": 1234567.0,
    "score": 2.0,
    "ordinal": 2.0,
    "category": "school",
}
_SPEC = re.compile(r"\{v(:[^}]*)?\}")


def _declarations():
    return [(family.__name__, f) for family in MILESTONE_FAMILIES for f in declared(family)]


def test_every_declared_feature_has_chinese_words():
    missing = [f"{family}.{f.name}" for family, f in _declarations() if f.name not in ZH_FEATURES]
    assert not missing, f"features without a Chinese template in serving/i18n.py ZH_FEATURES: {missing}"
    negatives = [
        f.name for _, f in _declarations() if (f.negative_text is None) != (ZH_FEATURES[f.name].negative is None)
    ]
    assert not negatives, f"a negative_text in one language only: {negatives}"
    stale = set(ZH_FEATURES) - {f.name for _, f in _declarations()}
    assert not stale, f"Chinese words for features nobody declares: {sorted(stale)}"


@pytest.mark.parametrize("settings", [DEFAULT, OTHER], ids=["default", "other"])
def test_chinese_words_format_like_the_english_ones(settings):
    for name, spec in feature_specs(settings).items():
        words = zh_words(spec)
        assert words is not None, name
        pairs = [(spec.text, words.text), (spec.negative_text, words.negative)]
        for english, chinese in pairs:
            if english is None:
                continue
            # the same format spec for the value: percentages, thousands and signs read alike in both languages
            assert sorted(_SPEC.findall(english)) == sorted(_SPEC.findall(chinese)), (name, english, chinese)
            told = chinese.format(v=SAMPLE[spec.unit])
            assert "{" not in told and "}" not in told, (name, told)
        assert not re.search(r"\{(short|long|recent)\}", words.label + words.text), name
        for days in (settings.short_window_days, settings.long_window_days):
            if name.endswith(f"_{days}d"):
                assert f"近{days}天" in words.text and f"近{days}天" in words.label, (name, words)


def _drivers_for_every_feature(specs, target_name, values):
    features = list(specs) + ["my_own_score"]
    columns = {name: np.array([values(name, specs.get(name))], dtype=object) for name in features}
    rng = np.random.default_rng(7)
    contributions = rng.normal(size=(1, len(features) + 1))
    (drivers,) = top_drivers(contributions, features, columns, target_spec(target_name), len(features), specs)
    assert len(drivers) == len(features)
    return drivers


def _sample(name, spec):
    return SAMPLE[spec.unit] if spec else 1.5


def _negative_or_missing(name, spec):
    if spec is None or spec.unit == "category":
        return None
    return math.nan if spec.unit in ("share", "count") else -SAMPLE[spec.unit]


@pytest.mark.parametrize("values", [_sample, _negative_or_missing], ids=["sample", "negative-or-missing"])
@pytest.mark.parametrize("settings", [DEFAULT, OTHER], ids=["default", "other"])
def test_english_is_what_top_drivers_says(settings, values):
    specs = feature_specs(settings)
    for target_name in TARGETS:
        for driver in _drivers_for_every_feature(specs, target_name, values):
            assert driver_text(driver, target_name, "en", specs) == driver["text"], driver
            chinese = driver_text(driver, target_name, "zh", specs)
            assert chinese.endswith(ZH_OUTCOMES[target_name] + ZH_DIRECTIONS[driver["direction"]]), chinese
            assert department_name(driver["department"], "zh") in chinese, chinese


def test_a_chinese_driver_told_in_full():
    specs = feature_specs(DEFAULT)

    def zh(feature, value, target_name="defect_risk", direction="up"):
        return driver_text({"feature": feature, "value": value, "direction": direction}, target_name, "zh", specs)

    assert zh("inspections_failed_30d", 3.0) == "近30天有3次检查不合格（质量部）使一次验收不合格风险上升"
    assert zh("inspection_fail_rate_90d", 0.25, "delay", "down") == "近90天检查不合格率25%（质量部）使后续预计延误下降"
    assert zh("contract_value", 1234567.0, "churn") == "合同金额1,234,567（项目部）使客户流失风险上升"
    assert zh("nps_trend", 2.0, "churn", "down") == "推荐意愿较上次调查变化+2（客服部）使客户流失风险下降"
    assert zh("spi_recent", 0.8765, "delay") == "近4周进度绩效指数（SPI）0.88（成本部）使后续预计延误上升"
    assert zh("days_to_milestone", -152.0, "delay", "down") == "节点已逾期152天（项目部）使后续预计延误下降"
    assert zh("days_to_milestone", 12.0, "delay") == "距计划节点日期还有12天（项目部）使后续预计延误上升"
    assert zh("defects_open", None) == "未关闭缺陷未知（尚无数据）（质量部）使一次验收不合格风险上升"
    assert zh("defects_found_30d", math.nan) == "近30天发现缺陷数未知（尚无数据）（质量部）使一次验收不合格风险上升"
    assert zh("project_type", "school") == "项目类型：school（项目部）使一次验收不合格风险上升"
    assert zh("my_own_score", 1.5) == "my_own_score：1.5（技术部）使一次验收不合格风险上升"
    assert zh("my_own_score", None) == "my_own_score未知（尚无数据）（技术部）使一次验收不合格风险上升"
    other = feature_specs(OTHER)
    said = driver_text({"feature": "complaints_14d", "value": 2.0, "direction": "up"}, "churn", "zh", other)
    assert said == "近14天客户投诉2次（客服部）使客户流失风险上升"


def test_an_overdue_milestone_reads_as_overdue_and_the_slip_still_to_come():
    specs = feature_specs(DEFAULT)
    assert describe("days_to_milestone", -152.0, specs) == ("152 days overdue", "project office")
    assert describe("days_to_milestone", 20.0, specs) == ("20 days to the planned milestone date", "project office")
    assert describe("days_past_planned_end", -30.0, specs)[0] == "30 days left to the planned end"
    assert describe("days_past_planned_end", 5.0, specs)[0] == "5 days past the planned end"
    assert specs["days_to_milestone"].description == "x days to the planned milestone date (below zero: x days overdue)"
    features = ["days_to_milestone", "spi_to_date"]
    columns = {"days_to_milestone": np.array([-152.0]), "spi_to_date": np.array([0.9])}
    (drivers,) = top_drivers(np.array([[-3.0, 1.0, 0.0]]), features, columns, target_spec("delay"), 2, specs)
    assert drivers[0]["text"] == "152 days overdue (project office) pushed the slip still to come down"
    assert drivers[0]["value"] == -152.0  # the value itself is unchanged: only its words


def test_outcomes_directions_and_departments_in_both_languages():
    assert set(ZH_OUTCOMES) == set(TARGETS)
    assert ZH_OUTCOMES["defect_risk"] == "一次验收不合格风险" and ZH_OUTCOMES["churn"] == "客户流失风险"
    assert set(ZH_DIRECTIONS) == {"up", "down"}
    for department in (*DEPARTMENTS, "safety"):
        assert department_name(department, "en") == department
        assert department_name(department, "zh").endswith("部"), department
    assert department_name("quality", "zh") == "质量部" and department_name("project office", "zh") == "项目部"
    assert department_name("safety", "zh") == "安全部" and department_name("customer service", "zh") == "客服部"
    with pytest.raises(ValueError, match="not one of en, zh"):
        department_name("quality", "fr")


@pytest.mark.parametrize(
    ("header", "explicit", "lang"),
    [
        (None, None, "en"),
        ("", None, "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", None, "zh"),
        ("zh-Hans-CN", None, "zh"),
        ("zh-TW;q=0.7", None, "zh"),
        ("en-GB,en;q=0.9,zh-CN;q=0.8", None, "en"),
        ("en;q=0.5, zh;q=0.9", None, "zh"),  # q-values, not order
        ("fr-FR, zh;q=0.5, en;q=0.4", None, "zh"),  # the most preferred language we speak
        ("fr-FR, de", None, "en"),
        ("zh;q=0, en;q=0.1", None, "en"),  # q=0: not acceptable
        ("zh;q=bad", None, "en"),
        ("*", None, "en"),
        ("zh-CN", "en", "en"),  # an explicit lang wins
        ("en-US", "zh", "zh"),
        ("en-US", "zh-CN", "zh"),
        ("en-US", "ZH", "zh"),
        ("zh-CN", "klingon", "zh"),  # a lang we do not speak: the browser decides
        (None, "", "en"),
    ],
)
def test_pick_lang(header, explicit, lang):
    assert pick_lang(header, explicit) == lang


def test_the_board_has_every_word_in_both_languages():
    assert set(UI) == set(LANGS)
    keys = {lang: set(words) for lang, words in UI.items()}
    assert keys["en"] == keys["zh"], {lang: sorted(keys[lang] - keys["en"] - keys["zh"]) for lang in LANGS}
    for lang in LANGS:
        words = ui_strings(lang)
        assert all(isinstance(v, str) and v.strip() for v in words.values()), lang
        assert json.loads(json.dumps(words, ensure_ascii=False)) == words
        words["title"] = "changed"
        assert UI[lang]["title"] != "changed"  # a copy
    needed = {
        "project", "client", "type", "region", "next_milestone", "planned", "defect_risk", "expected_slip", "range",
        "p_late", "churn_risk", "level_low", "level_medium", "level_high", "top_driver", "department", "search",
        "filter", "all", "open_milestones", "drivers", "trend", "facts", "recent_inspections", "open_defects",
        "complaints", "what_if", "labour_hours", "close_open_defects", "answer_complaints", "before", "after",
        "accuracy", "test_metrics", "calibration_curve", "worklist", "portfolio", "kpi_report", "as_of",
        "data_snapshot", "model_versions", "language", "loading", "no_data", "error",
    }  # fmt: skip
    assert needed <= keys["en"], sorted(needed - keys["en"])
    zh = UI["zh"]
    assert zh["level_high"] == "高" and zh["what_if"] == "情景模拟" and zh["drivers"] == "主要影响因素"
    assert zh["department_customer_service"] == "客服部"


def _driver(feature, value, direction="up"):
    return {"feature": feature, "value": value, "text": "as served", "department": "quality", "direction": direction}


def _project():
    milestone = {
        name: {"probability": 0.3, "level": "medium", "drivers": [_driver("inspections_failed_30d", 3.0)]}
        for name in (spec.name for spec in of_scope("milestone"))
    }
    client = {"probability": 0.1, "drivers": [_driver("complaints_open", 2.0, "down")]}
    return {
        "project_id": "P1",
        "client_id": "C1",
        "milestones": [
            {"milestone_id": "M1", **milestone},
            {"milestone_id": "M2", **{name: None for name in milestone}},  # a target that could not answer
        ],
        **{spec.name: copy.deepcopy(client) for spec in of_scope("client")},
    }


def test_translate_project_rewrites_every_driver_and_leaves_the_input_alone():
    specs = feature_specs(DEFAULT)
    project = _project()
    before = json.dumps(project, sort_keys=True)
    translated = translate_project(project, "zh", specs)
    assert json.dumps(project, sort_keys=True) == before
    assert translated is not project
    texts = []
    for spec in of_scope("milestone"):
        (driver,) = translated["milestones"][0][spec.name]["drivers"]
        assert driver["text"] == f"近30天有3次检查不合格（质量部）使{ZH_OUTCOMES[spec.name]}上升"
        texts.append(driver["text"])
        assert translated["milestones"][1][spec.name] is None
    for spec in of_scope("client"):
        (driver,) = translated[spec.name]["drivers"]
        assert driver["text"] == f"2项投诉尚未处理完成（客服部）使{ZH_OUTCOMES[spec.name]}下降"
        assert driver["department"] == "quality"  # keys stay as served: only the words change
        texts.append(driver["text"])
    assert len(texts) == len(TARGETS)
    assert translate_project(project, "en", specs) is project
    unanswered = {**project, **{spec.name: None for spec in of_scope("client")}}  # no client: no churn answer
    assert all(translate_project(unanswered, "zh", specs)[spec.name] is None for spec in of_scope("client"))
