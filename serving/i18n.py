"""English and Simplified Chinese for the drivers, the departments and the risk board (issue 11).

The English words are the registry's (:mod:`features.registry`, told by :mod:`serving.drivers`); this module holds
the Chinese ones, in the vocabulary of /work/shared/GLOSSARY.md (质量部, 一次验收, 未关闭缺陷, 客户流失风险...):

- :data:`ZH_FEATURES`: one entry a declared feature, keyed by its declared (unresolved) name template
  (``"inspections_failed_{short}d"``), with the same windows and the same format spec for the value as the English
  text, so a value reads alike in both (25%, 1,234,567, +2). A test fails naming any declared feature without one.
- :func:`driver_text` tells one driver in a language; :func:`translate_project` rewrites every driver of an answer.
- :data:`UI` and :func:`ui_strings`: the board's own words by key, fetched by its JavaScript as JSON.
- :func:`pick_lang`: an explicit ``lang`` wins, else the browser's Accept-Language.

The catalog is Python rather than ``serving/locales/zh.json``: it ships with the package without package-data
entries in pyproject or the bento, loads without file I/O, is checked by ruff, and each entry is a typed
:class:`Words` (a label for "unknown", the text, and the text of a value below zero). The board gets its strings
as JSON from :func:`ui_strings` all the same.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from typing import NamedTuple

from features.registry import COST, CUSTOMER, PLANNING, QUALITY, SAFETY, TECHNICAL, FeatureSpec, fill_windows
from features.targets import CLIENT, MILESTONE, of_scope, target
from serving.drivers import describe, fill_value, missing, pushed

LANGS = ("en", "zh")
DEFAULT_LANG = "en"


class Words(NamedTuple):
    """A feature in Chinese: ``label`` names it (for "未知"), ``text`` tells its value (``{v...}`` as in English,
    windows as ``{short}``/``{long}``/``{recent}``), ``negative`` a value below zero by its magnitude."""

    label: str
    text: str
    negative: str | None = None


ZH_FEATURES: dict[str, Words] = {
    # project_features
    "project_type": Words("项目类型", "项目类型：{v}"),
    "region": Words("区域", "区域：{v}"),
    "contract_value": Words("合同金额", "合同金额{v:,.0f}"),
    "planned_duration_days": Words("计划工期", "计划工期{v:.0f}天"),
    "days_since_start": Words("计划开工以来天数", "计划开工已{v:.0f}天"),
    "elapsed_share": Words("计划工期已过比例", "计划工期已过{v:.0%}"),
    "days_past_planned_end": Words(
        "超过计划竣工日期天数", "超过计划竣工日期{v:.0f}天", negative="距计划竣工日期还有{v:.0f}天"
    ),
    "days_since_award": Words("中标以来天数", "中标已{v:.0f}天"),
    # milestone_features
    "milestone_kind": Words("节点类型", "节点类型：{v}"),
    "milestone_sequence": Words("节点序号", "计划中的第{v:.0f}个节点"),
    "milestones_in_plan": Words("计划节点数", "计划共{v:.0f}个节点"),
    "milestone_share": Words("节点计划进度", "节点计划已推进{v:.0%}"),
    "days_to_milestone": Words("距计划节点日期天数", "距计划节点日期还有{v:.0f}天", negative="节点已逾期{v:.0f}天"),
    # inspection_features
    "inspections_{short}d": Words("近{short}天检查次数", "近{short}天检查{v:.0f}次"),
    "inspections_failed_{short}d": Words("近{short}天检查不合格次数", "近{short}天有{v:.0f}次检查不合格"),
    "inspection_fail_rate_{short}d": Words("近{short}天检查不合格率", "近{short}天检查不合格率{v:.0%}"),
    "inspections_{long}d": Words("近{long}天检查次数", "近{long}天检查{v:.0f}次"),
    "inspections_failed_{long}d": Words("近{long}天检查不合格次数", "近{long}天有{v:.0f}次检查不合格"),
    "inspection_fail_rate_{long}d": Words("近{long}天检查不合格率", "近{long}天检查不合格率{v:.0%}"),
    "inspections_to_date": Words("累计检查次数", "累计检查{v:.0f}次"),
    "inspections_failed_to_date": Words("累计检查不合格次数", "累计{v:.0f}次检查不合格"),
    "inspection_fail_rate_to_date": Words("累计检查不合格率", "累计检查不合格率{v:.0%}"),
    "inspection_conditional_rate_{long}d": Words("近{long}天有条件通过率", "近{long}天{v:.0%}的检查有条件通过"),
    "defects_found_{short}d": Words("近{short}天发现缺陷数", "近{short}天发现{v:.0f}个缺陷"),
    "severe_findings_{short}d": Words("近{short}天重大或严重问题数", "近{short}天发现{v:.0f}个重大或严重问题"),
    "defects_found_{long}d": Words("近{long}天发现缺陷数", "近{long}天发现{v:.0f}个缺陷"),
    "severe_findings_{long}d": Words("近{long}天重大或严重问题数", "近{long}天发现{v:.0f}个重大或严重问题"),
    "defects_open": Words("未关闭缺陷", "未关闭缺陷（整改未闭环）{v:.0f}个"),
    "inspections_open": Words("整改未闭环的检查", "{v:.0f}次检查的问题整改未闭环"),
    "max_severity_to_date": Words("迄今最高问题严重程度", "迄今最高问题严重程度{v:.0f}（满分3）"),
    "days_to_close_mean": Words("缺陷平均关闭天数", "缺陷平均{v:.1f}天关闭"),
    "days_since_failed_inspection": Words("距上次检查不合格天数", "距上次检查不合格已{v:.0f}天"),
    "safety_inspections_failed_{long}d": Words("近{long}天安全检查不合格次数", "近{long}天有{v:.0f}次安全检查不合格"),
    "safety_findings_open": Words("未关闭的安全隐患", "{v:.0f}项安全隐患未整改关闭"),
    # resource_features
    "resource_weeks_reported": Words("资源周报周数", "资源周报{v:.0f}周"),
    "labour_hours_ratio_to_date": Words("累计人工工时与计划之比", "累计人工工时为计划的{v:.0%}"),
    "overtime_share_to_date": Words("累计加班占比", "累计加班占工时的{v:.0%}"),
    "late_delivery_share_to_date": Words("累计到货延迟占比", "累计{v:.0%}的到货延迟"),
    "spi_to_date": Words("累计进度绩效指数", "累计进度绩效指数（SPI）{v:.2f}"),
    "cpi_to_date": Words("累计成本绩效指数", "累计成本绩效指数（CPI）{v:.2f}"),
    "downtime_hours_to_date": Words("累计设备停机小时", "累计设备停机{v:.0f}小时"),
    "labour_hours_ratio_recent": Words("近{recent}周人工工时与计划之比", "近{recent}周人工工时为计划的{v:.0%}"),
    "overtime_share_recent": Words("近{recent}周加班占比", "近{recent}周加班占工时的{v:.0%}"),
    "late_delivery_share_recent": Words("近{recent}周到货延迟占比", "近{recent}周{v:.0%}的到货延迟"),
    "spi_recent": Words("近{recent}周进度绩效指数", "近{recent}周进度绩效指数（SPI）{v:.2f}"),
    "cpi_recent": Words("近{recent}周成本绩效指数", "近{recent}周成本绩效指数（CPI）{v:.2f}"),
    "downtime_hours_recent": Words("近{recent}周设备停机小时", "近{recent}周设备停机{v:.0f}小时"),
    # complaint_features
    "complaints_{short}d": Words("近{short}天客户投诉次数", "近{short}天客户投诉{v:.0f}次"),
    "complaints_{long}d": Words("近{long}天客户投诉次数", "近{long}天客户投诉{v:.0f}次"),
    "complaints_to_date": Words("累计客户投诉次数", "累计客户投诉{v:.0f}次"),
    "complaints_open": Words("未处理完成的投诉", "{v:.0f}项投诉尚未处理完成"),
    "complaints_unanswered": Words("未首次响应的投诉", "{v:.0f}项投诉尚无首次响应"),
    "complaint_severity_mean": Words("投诉平均严重程度", "投诉平均严重程度{v:.1f}（满分3）"),
    "complaint_response_hours_mean": Words("投诉平均首次响应小时", "投诉平均{v:.0f}小时首次响应"),
    "complaints_escalated": Words("升级的投诉", "{v:.0f}项投诉已升级"),
    # survey_features
    "surveys_to_date": Words("满意度调查次数", "满意度调查{v:.0f}次"),
    "csat_latest": Words("最近一次客户满意度", "最近一次客户满意度{v:.1f}（满分5）"),
    "csat_trend": Words("客户满意度变化", "客户满意度较上次调查变化{v:+.1f}"),
    "csat_mean": Words("平均客户满意度", "迄今平均客户满意度{v:.1f}（满分5）"),
    "nps_latest": Words("最近一次推荐意愿", "最近一次推荐意愿{v:.0f}（满分10）"),
    "nps_trend": Words("推荐意愿变化", "推荐意愿较上次调查变化{v:+.0f}"),
    "nps_mean": Words("平均推荐意愿", "迄今平均推荐意愿{v:.1f}（满分10）"),
    # milestone_history_features
    "milestones_done": Words("已完成节点数", "已完成{v:.0f}个节点"),
    "milestones_behind_plan": Words("落后于计划的节点数", "{v:.0f}个节点落后于计划"),
    "prior_slip_mean_days": Words("此前节点平均延误天数", "此前节点平均延误{v:.0f}天"),
    "prior_slip_last_days": Words("上一个节点延误天数", "上一个节点延误{v:.0f}天"),
    "prior_first_pass_failures": Words("此前一次验收不合格的节点数", "此前{v:.0f}个节点一次验收不合格"),
    "prior_first_pass_fail_rate": Words("此前节点一次验收不合格率", "此前节点一次验收不合格率{v:.0%}"),
    # kind_history_features
    "firm_kind_first_pass_fail_rate": Words("全公司此类节点一次验收不合格率", "全公司此类节点一次验收不合格率{v:.0%}"),
    # client_features
    "client_projects_awarded": Words("客户授予项目数", "该客户累计授予{v:.0f}个项目"),
    "client_projects_completed": Words("客户已交付项目数", "该客户已有{v:.0f}个项目竣工交付"),
    "client_delay_mean_days": Words("客户此前项目平均延期天数", "该客户此前项目平均延期{v:.0f}天完工"),
    "client_complaints_to_date": Words("客户累计投诉次数", "该客户各项目累计投诉{v:.0f}次"),
    "client_tenure_days": Words("客户合作天数", "合作客户已{v:.0f}天"),
}

DEPARTMENT_NAMES: dict[str, dict[str, str]] = {
    "en": {
        QUALITY: "quality",
        TECHNICAL: "technical",
        SAFETY: "safety",
        COST: "cost",
        CUSTOMER: "customer service",
        PLANNING: "project office",
    },
    "zh": {
        QUALITY: "质量部",
        TECHNICAL: "技术部",
        SAFETY: "安全部",
        COST: "成本部",
        CUSTOMER: "客服部",
        PLANNING: "项目部",
    },
}

# What a driver pushes, by target (the English is each TargetSpec's ``outcome``), and which way.
ZH_OUTCOMES: dict[str, str] = {
    "defect_risk": "一次验收不合格风险",
    "delay": "后续预计延误",  # the slip still to come beyond the delay already incurred
    "churn": "客户流失风险",
}
ZH_DIRECTIONS: dict[str, str] = {"up": "上升", "down": "下降"}

# The risk board's words by key: every key in both languages (a test checks), fetched as JSON by the board.
UI: dict[str, dict[str, str]] = {
    "en": {
        # the product and its views
        "title": "EQSMS Risk",
        "subtitle": "risk early warning before each milestone",
        "portfolio": "portfolio",
        "project_view": "project",
        "worklist": "worklist",
        "kpi_report": "KPI report",
        "accuracy": "accuracy",
        # portfolio columns
        "project": "project",
        "client": "client",
        "type": "type",
        "region": "region",
        "milestone": "milestone",
        "kind": "kind",
        "next_milestone": "next milestone",
        "planned": "planned",
        "defect_risk": "defect risk",
        "expected_slip": "expected slip",
        "slip_days": "days",
        "range": "range",
        "p_late": "P(late)",
        "churn_risk": "churn risk",
        "level": "level",
        "level_low": "low",
        "level_medium": "medium",
        "level_high": "high",
        "top_driver": "top driver",
        "department": "department",
        "delay_incurred": "days overdue",
        # controls
        "search": "search",
        "search_placeholder": "project, client or milestone id",
        "filter": "filter",
        "all": "all",
        "sort": "sort",
        "clear": "clear",
        "apply": "apply",
        "reset": "reset",
        "back": "back",
        "previous": "previous",
        "next": "next",
        "showing": "showing",
        "of": "of",
        "rows": "rows",
        "download_csv": "download CSV",
        # a project
        "open_milestones": "open milestones",
        "drivers": "drivers",
        "pushed_up": "pushed up",
        "pushed_down": "pushed down",
        "trend": "trend",
        "trend_weeks": "risk over past weeks",
        "facts": "facts",
        "recent_inspections": "recent inspections",
        "open_defects": "open defects",
        "complaints": "complaints",
        "spi": "schedule performance index (SPI)",
        "cpi": "cost performance index (CPI)",
        "date": "date",
        "result": "result",
        "severity": "severity",
        "status": "status",
        # what-if
        "what_if": "what-if",
        "labour_hours": "labour hours",
        "close_open_defects": "close open defects",
        "answer_complaints": "answer complaints",
        "answer_complaints_faster": "answer complaints faster",
        "run_what_if": "recompute",
        "before": "before",
        "after": "after",
        "change": "change",
        # accuracy
        "test_metrics": "test metrics",
        "calibration_curve": "calibration curve",
        "predicted": "predicted",
        "observed": "observed",
        "baseline": "reference class",
        "model": "model",
        "coverage": "coverage",
        # worklist
        "risk_added": "risk added",
        "what_if_gain": "gain from acting",
        # KPIs
        "first_pass_rate": "first-pass acceptance rate",
        "on_time_rate": "on-time milestone rate",
        "csat": "customer satisfaction (CSAT)",
        "nps": "net promoter score (NPS)",
        "target": "target",
        "gap": "gap",
        # the answer's provenance and state
        "as_of": "as of",
        "data_snapshot": "data snapshot",
        "latest_fact": "latest fact",
        "stale": "the data may be out of date",
        "model_versions": "model versions",
        "version": "version",
        "language": "language",
        "loading": "loading…",
        "no_data": "no data",
        "not_measurable": "not measurable",
        "error": "error",
        "retry": "retry",
        # the board's own words (serving/ui/strings.js keeps the English copy the page starts with)
        "built_at": "built",
        "days_before_as_of": "{n} days before as of",
        "no_such_page": "no such page: {route}",
        "delay": "delay",
        "days_n": "{n} d",
        "points_n": "{n} pts",
        "millions_n": "{n} M",
        "showing_counter": "showing {shown} of {matching} matching projects ({total} open)",
        "show_more": "show {n} more",
        "no_open_milestone": "no open milestone",
        "open_projects": "open projects",
        "high_risk": "high risk",
        "medium_risk": "medium risk",
        "low_risk": "low risk",
        "client_placeholder": "client id",
        "no_open_milestones_now": "no open milestone at this date",
        "planned_on": "planned {date}",
        "overdue_days": "overdue {n} d",
        "defect_risk_explain": "probability that acceptance fails on first pass",
        "delay_explain": "expected slip in days; late means more than {n} days",
        "range_coverage_share": "{share} of milestones fall in it",
        "churn_explain": "probability the client awards no new project after this one",
        "no_drivers": "no drivers",
        "what_if_explain": "change what the teams can act on and see the new risks beside the old ones",
        "labour_hours_ratio": "labour hours ÷ plan, recent weeks",
        "now_value": "now {ratio}",
        "bad_labour_ratio": "the labour hours ratio must be a number of at least 0",
        "open_defects_now": "({n} defects, {m} inspections open)",
        "open_complaints_now": "({n} open)",
        "choose_change": "choose a change first",
        "trend_probabilities": "probabilities (highest over the open milestones)",
        "trend_slip": "expected slip, days (highest)",
        "open_complaints": "open complaints",
        "contract_value": "contract value",
        "open": "open",
        "unanswered": "unanswered",
        "discipline": "discipline",
        "defects_found": "defects",
        "max_severity": "max severity",
        "closed": "closed",
        "received": "received",
        "category": "category",
        "first_response": "first response",
        "resolved": "resolved",
        "result_pass": "pass",
        "result_fail": "fail",
        "result_conditional": "conditional",
        "accuracy_explain": (
            "how good each number on the board is: the champion's metrics on test rows it never saw, "
            "and whether its probabilities mean what they say"
        ),
        "accuracy_link_title": "how accurate is this? {model}: test metrics and calibration",
        "held_up": "how its predictions held up",
        "held_up_explain": (
            "the predictions the service made, judged by the outcomes known by {when}, beside the reference class "
            "on the same milestones"
        ),
        "held_up_none": "not judged yet: run eqsms monitor on a new export",
        "held_up_version": "v{version}: {rows} judged over {weeks} weeks",
        "reference_class": "reference class",
        "monitor_flag": "flagged for retraining",
        "champion_history": "champion history",
        "move_first_model": "first model",
        "move_promoted": "promoted",
        "move_rolled_back": "rolled back",
        "feedback": "planners' notes",
        "feedback_explain": "a note or an override about a prediction: kept beside it in the prediction log",
        "feedback_none": "no note yet",
        "feedback_corrected": "corrected to",
        "feedback_outcome": "outcome: {value}",
        "feedback_no_level": "no corrected level",
        "feedback_placeholder": "e.g. we disagree: the subcontractor was replaced",
        "feedback_save": "save the note",
        "version_alias": "v{version} @{alias}",
        "trained_on": "trained {when}",
        "test_window": "{n} test rows, {from} → {to}",
        "calibration_of": "calibration: {of}",
        "calibration_explain": (
            "each dot is a group of test rows with similar predictions (bigger: more rows); on the "
            "dashed diagonal a predicted 20% happened 20% of the time"
        ),
        "probability": "probability",
        "perfect_calibration": "perfect calibration",
        "calibration_bin": "predicted {predicted}, observed {observed}, {n} rows",
        "no_calibration": "no calibration curve for this model",
        "by_band": "by horizon band",
        "band": "band",
        "band_ahead": "ahead of the planned date",
        "band_near": "near the planned date",
        "band_overdue": "overdue",
        "coverage_by_band": "range coverage by band",
        "coverage_explain": "share of test milestones whose slip fell inside the range (nominal {share})",
        "unknown_model": "no model named {name}",
        "window_train": "training",
        "window_calibration": "calibration",
        "window_test": "test",
        "worklist_explain": (
            "where a department's drivers push risk up most, ranked by what they add to the "
            "prediction, with the what-if gain of acting on them"
        ),
        "prediction": "prediction",
        "share_of_push": "share of the push",
        "worklist_empty": "nothing for {department} at this date",
        "metric_roc_auc": "ROC AUC",
        "metric_roc_auc_help": "ranking: 0.5 is chance, 1 perfect",
        "metric_pr_auc": "PR AUC",
        "metric_pr_auc_help": "precision over recall; compare with the event rate",
        "metric_brier": "Brier score",
        "metric_brier_help": "squared error of the probability; lower is better",
        "metric_log_loss": "log loss",
        "metric_log_loss_help": "lower is better",
        "metric_ece": "calibration error (ECE)",
        "metric_ece_help": "mean gap between predicted and observed; lower is better",
        "metric_precision_top10": "precision, top 10%",
        "metric_precision_top10_help": "share of events among the 10% highest risks",
        "metric_positive_rate": "event rate",
        "metric_positive_rate_help": "share of test rows where it happened",
        "metric_mae": "mean absolute error",
        "metric_mae_help": "days off, on average",
        "metric_rmse": "RMSE",
        "metric_rmse_help": "days; large misses weigh more",
        "metric_r2": "R²",
        "metric_r2_help": "share of the slip's variance explained",
        "metric_coverage": "range coverage",
        "metric_coverage_help": "share of slips inside the predicted range",
        "metric_mean_width": "mean range width",
        "metric_mean_width_help": "days",
        "metric_late_auc": "P(late) ROC AUC",
        "metric_late_auc_help": "ranking of late milestones",
        "metric_late_brier": "P(late) Brier score",
        "metric_late_brier_help": "lower is better",
        "metric_late_ece": "P(late) calibration error",
        "metric_late_ece_help": "lower is better",
        "kind_foundation": "foundation",
        "kind_structure": "structure",
        "kind_envelope": "envelope",
        "kind_mep": "MEP",
        "kind_fit_out": "fit-out",
        "kind_handover": "handover",
        "type_hospital": "hospital",
        "type_infrastructure": "infrastructure",
        "type_office": "office",
        "type_residential": "residential",
        "type_school": "school",
        "region_central": "central",
        "region_east": "east",
        "region_north": "north",
        "region_south": "south",
        "region_west": "west",
        "discipline_civil": "civil",
        "discipline_finishes": "finishes",
        "discipline_mep": "MEP",
        "discipline_safety": "safety",
        "discipline_structural": "structural",
        "category_billing": "billing",
        "category_communication": "communication",
        "category_other": "other",
        "category_quality": "quality",
        "category_safety": "safety",
        "category_schedule": "schedule",
    },
    "zh": {
        "title": "EQSMS 风险预警",
        "subtitle": "节点前的风险预警",
        "portfolio": "项目总览",
        "project_view": "项目",
        "worklist": "待办清单",
        "kpi_report": "KPI 报告",
        "accuracy": "模型准确度",
        "project": "项目",
        "client": "客户",
        "type": "类型",
        "region": "区域",
        "milestone": "节点",
        "kind": "节点类型",
        "next_milestone": "下一节点",
        "planned": "计划日期",
        "defect_risk": "质量风险",
        "expected_slip": "预计延误天数",
        "slip_days": "天",
        "range": "区间",
        "p_late": "延误概率",
        "churn_risk": "客户流失风险",
        "level": "等级",
        "level_low": "低",
        "level_medium": "中",
        "level_high": "高",
        "top_driver": "首要影响因素",
        "department": "责任部门",
        "delay_incurred": "已逾期天数",
        "search": "搜索",
        "search_placeholder": "项目、客户或节点编号",
        "filter": "筛选",
        "all": "全部",
        "sort": "排序",
        "clear": "清除",
        "apply": "应用",
        "reset": "重置",
        "back": "返回",
        "previous": "上一页",
        "next": "下一页",
        "showing": "显示",
        "of": "共",
        "rows": "行",
        "download_csv": "下载 CSV",
        "open_milestones": "未完成节点",
        "drivers": "主要影响因素",
        "pushed_up": "推高",
        "pushed_down": "拉低",
        "trend": "趋势",
        "trend_weeks": "过去几周的风险",
        "facts": "事实依据",
        "recent_inspections": "近期检查",
        "open_defects": "未关闭缺陷",
        "complaints": "客户投诉",
        "spi": "进度绩效指数（SPI）",
        "cpi": "成本绩效指数（CPI）",
        "date": "日期",
        "result": "结果",
        "severity": "严重程度",
        "status": "状态",
        "what_if": "情景模拟",
        "labour_hours": "人工工时",
        "close_open_defects": "关闭未关闭缺陷",
        "answer_complaints": "响应客户投诉",
        "answer_complaints_faster": "更快响应客户投诉",
        "run_what_if": "重新计算",
        "before": "调整前",
        "after": "调整后",
        "change": "变化",
        "test_metrics": "测试指标",
        "calibration_curve": "校准曲线",
        "predicted": "预测值",
        "observed": "实际值",
        "baseline": "参照基准",
        "model": "模型",
        "coverage": "覆盖率",
        "risk_added": "增加的风险",
        "what_if_gain": "采取措施的收益",
        "first_pass_rate": "一次验收合格率",
        "on_time_rate": "节点按期完成率",
        "csat": "客户满意度",
        "nps": "净推荐值",
        "target": "目标",
        "gap": "差距",
        "as_of": "截至",
        "data_snapshot": "数据快照",
        "latest_fact": "最新数据",
        "stale": "数据可能已过期",
        "model_versions": "模型版本",
        "version": "版本",
        "language": "语言",
        "loading": "加载中…",
        "no_data": "暂无数据",
        "not_measurable": "无法计量",
        "error": "出错",
        "retry": "重试",
        # the board's own words (serving/ui/strings.js keeps the English copy the page starts with)
        "built_at": "生成于",
        "days_before_as_of": "早于截至日{n}天",
        "no_such_page": "没有这个页面：{route}",
        "delay": "工期延误",
        "days_n": "{n} 天",
        "points_n": "{n} 个百分点",
        "millions_n": "{n} 百万",
        "showing_counter": "显示 {shown} / {matching} 个符合条件的项目（共 {total} 个在建）",
        "show_more": "再显示 {n} 个",
        "no_open_milestone": "无未完成节点",
        "open_projects": "在建项目",
        "high_risk": "高风险",
        "medium_risk": "中风险",
        "low_risk": "低风险",
        "client_placeholder": "客户编号",
        "no_open_milestones_now": "截至该日无未完成节点",
        "planned_on": "计划 {date}",
        "overdue_days": "已逾期 {n} 天",
        "defect_risk_explain": "一次验收不合格的概率",
        "delay_explain": "预计延误天数；超过 {n} 天即为延误",
        "range_coverage_share": "{share} 的节点落在此区间",
        "churn_explain": "客户此后不再授予新项目的概率",
        "no_drivers": "无主要影响因素",
        "what_if_explain": "调整各部门可采取的措施，对比调整前后的风险",
        "labour_hours_ratio": "近几周人工工时 ÷ 计划",
        "now_value": "当前 {ratio}",
        "bad_labour_ratio": "人工工时比必须是不小于 0 的数字",
        "open_defects_now": "（{n} 个缺陷、{m} 次检查未闭环）",
        "open_complaints_now": "（{n} 件未处理完成）",
        "choose_change": "请先选择一项调整",
        "trend_probabilities": "概率（各未完成节点中最高）",
        "trend_slip": "预计延误天数（最高）",
        "open_complaints": "未处理完成的投诉",
        "contract_value": "合同金额",
        "open": "未关闭",
        "unanswered": "未响应",
        "discipline": "专业",
        "defects_found": "缺陷数",
        "max_severity": "最高严重程度",
        "closed": "关闭日期",
        "received": "收到日期",
        "category": "类别",
        "first_response": "首次响应",
        "resolved": "处理完成",
        "result_pass": "合格",
        "result_fail": "不合格",
        "result_conditional": "有条件通过",
        "accuracy_explain": "看板上每个数字有多可靠：冠军模型在未见过的测试数据上的指标，以及其概率是否名副其实",
        "accuracy_link_title": "准确度如何？{model}：测试指标与校准曲线",
        "held_up": "预测的实际表现",
        "held_up_explain": "服务做出的预测，按截至 {when} 已知的结果评判，并与同一批节点上的参考类预测对比",
        "held_up_none": "尚未评判：请对新的导出数据运行 eqsms monitor",
        "held_up_version": "版本 {version}：{weeks} 周内评判 {rows} 条",
        "reference_class": "参考类",
        "monitor_flag": "已标记需重新训练",
        "champion_history": "冠军模型变更记录",
        "move_first_model": "首个模型",
        "move_promoted": "晋升",
        "move_rolled_back": "回滚",
        "feedback": "计划人员备注",
        "feedback_explain": "对某项预测的备注或修正：与预测一起保存在预测日志中",
        "feedback_none": "暂无备注",
        "feedback_corrected": "修正为",
        "feedback_outcome": "实际结果：{value}",
        "feedback_no_level": "不修正等级",
        "feedback_placeholder": "例如：我们不同意，分包商已更换",
        "feedback_save": "保存备注",
        "version_alias": "版本 {version} @{alias}",
        "trained_on": "训练于 {when}",
        "test_window": "{n} 条测试数据，{from} → {to}",
        "calibration_of": "校准曲线：{of}",
        "calibration_explain": (
            "每个点是一组预测相近的测试数据（点越大数据越多）；落在虚线对角线上表示预测 20% 的事件实际也发生了 20%"
        ),
        "probability": "概率",
        "perfect_calibration": "完美校准",
        "calibration_bin": "预测 {predicted}，实际 {observed}，{n} 条",
        "no_calibration": "该模型没有校准曲线",
        "by_band": "按预测提前期分段",
        "band": "分段",
        "band_ahead": "距计划日期较远",
        "band_near": "临近计划日期",
        "band_overdue": "已逾期",
        "coverage_by_band": "各分段的区间覆盖率",
        "coverage_explain": "测试节点的实际延误落在预测区间内的比例（名义 {share}）",
        "unknown_model": "没有名为 {name} 的模型",
        "window_train": "训练",
        "window_calibration": "校准",
        "window_test": "测试",
        "worklist_explain": "各部门的影响因素推高风险最多之处，按其增加的风险排序，并给出采取措施的情景模拟收益",
        "prediction": "预测",
        "share_of_push": "占推高部分的比例",
        "worklist_empty": "截至该日{department}无待办",
        "metric_roc_auc": "ROC AUC",
        "metric_roc_auc_help": "排序能力：0.5 为随机，1 为完美",
        "metric_pr_auc": "PR AUC",
        "metric_pr_auc_help": "精确率-召回率曲线下面积；与事件发生率比较",
        "metric_brier": "Brier 分数",
        "metric_brier_help": "概率的平方误差；越低越好",
        "metric_log_loss": "对数损失",
        "metric_log_loss_help": "越低越好",
        "metric_ece": "校准误差（ECE）",
        "metric_ece_help": "预测与实际的平均差距；越低越好",
        "metric_precision_top10": "前 10% 精确率",
        "metric_precision_top10_help": "风险最高的 10% 中实际发生的比例",
        "metric_positive_rate": "事件发生率",
        "metric_positive_rate_help": "测试数据中实际发生的比例",
        "metric_mae": "平均绝对误差",
        "metric_mae_help": "平均偏差天数",
        "metric_rmse": "均方根误差",
        "metric_rmse_help": "天；大偏差权重更高",
        "metric_r2": "R²",
        "metric_r2_help": "解释的延误方差比例",
        "metric_coverage": "区间覆盖率",
        "metric_coverage_help": "实际延误落在预测区间内的比例",
        "metric_mean_width": "平均区间宽度",
        "metric_mean_width_help": "天",
        "metric_late_auc": "延误概率 ROC AUC",
        "metric_late_auc_help": "延误节点的排序能力",
        "metric_late_brier": "延误概率 Brier 分数",
        "metric_late_brier_help": "越低越好",
        "metric_late_ece": "延误概率校准误差",
        "metric_late_ece_help": "越低越好",
        "kind_foundation": "基础",
        "kind_structure": "主体结构",
        "kind_envelope": "围护结构",
        "kind_mep": "机电安装",
        "kind_fit_out": "装饰装修",
        "kind_handover": "竣工交付",
        "type_hospital": "医院",
        "type_infrastructure": "基础设施",
        "type_office": "办公楼",
        "type_residential": "住宅",
        "type_school": "学校",
        "region_central": "中部",
        "region_east": "东部",
        "region_north": "北部",
        "region_south": "南部",
        "region_west": "西部",
        "discipline_civil": "土建",
        "discipline_finishes": "装饰",
        "discipline_mep": "机电",
        "discipline_safety": "安全",
        "discipline_structural": "结构",
        "category_billing": "结算",
        "category_communication": "沟通",
        "category_other": "其他",
        "category_quality": "质量",
        "category_safety": "安全",
        "category_schedule": "进度",
    },
}
for _lang, _names in DEPARTMENT_NAMES.items():  # "department_customer_service": the department names, declared once
    UI[_lang].update({f"department_{key.replace(' ', '_')}": name for key, name in _names.items()})


def _lang_of(tag: str) -> str | None:
    """The language of a tag ("zh-CN", "zh-Hans-CN", "en-GB", "EN") among :data:`LANGS`, or None."""
    primary = tag.strip().lower().replace("_", "-").split("-")[0]
    return primary if primary in LANGS else None


def _preferred(accept_language: str) -> list[str]:
    """The tags of an Accept-Language header, most preferred first (by q, then by order); q=0 left out."""
    ranked = []
    for order, part in enumerate(accept_language.split(",")):
        tag, *params = (piece.strip() for piece in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if tag and q > 0 and not math.isnan(q):
            ranked.append((-q, order, tag))
    return [tag for _, _, tag in sorted(ranked)]


def pick_lang(accept_language: str | None, explicit: str | None) -> str:
    """The language to answer in: ``explicit`` (a ``lang`` parameter or the board's switch) when it is one of
    :data:`LANGS`, else the browser's most preferred language we speak (any ``zh*`` is "zh"), else English."""
    if explicit and (lang := _lang_of(explicit)):
        return lang
    for tag in _preferred(accept_language or ""):
        if lang := _lang_of(tag):
            return lang
    return DEFAULT_LANG


def _check(lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"language {lang!r} is not one of {', '.join(LANGS)}")
    return lang


def department_name(department: str, lang: str) -> str:
    """A department key of the registry ("quality", "customer service", ...) in ``lang`` (unknown keys as given)."""
    return DEPARTMENT_NAMES[_check(lang)].get(department, department)


def strings_module() -> str:
    """The board's English words as the JavaScript module it imports (``/ui/strings.js``): the catalog above is the
    only copy, and the page has its words before it asks the service for another language's."""
    words = json.dumps(UI["en"], ensure_ascii=False, indent=1)
    return f"// Written by serving/i18n.py from its catalog: edit the words there.\nexport const EN = {words};\n"


def ui_strings(lang: str) -> dict[str, str]:
    """The board's words in ``lang``, by key (a copy: the board's JSON)."""
    return dict(UI[_check(lang)])


def zh_words(spec: FeatureSpec) -> Words | None:
    """The Chinese words of a resolved feature, windows filled in as the registry filled the English ones."""
    words = ZH_FEATURES.get(spec.declared_name or spec.name)
    if words is None:
        return None
    return Words(*(None if t is None else fill_windows(t, spec.windows) for t in words))


def describe_zh(feature: str, value, specs: Mapping[str, FeatureSpec]) -> tuple[str, str]:
    """:func:`serving.drivers.describe` in Chinese: the feature and its value, and its department in Chinese."""
    spec = specs.get(feature)
    department = department_name(spec.department if spec else TECHNICAL, "zh")
    words = zh_words(spec) if spec else None
    if spec is not None and words is None:  # declared without Chinese words (a test forbids it): the English
        return describe(feature, value, specs)[0], department
    if missing(value):
        return f"{words.label if words else feature}未知（尚无数据）", department
    if words is None:
        return f"{feature}：{value}", department
    return fill_value(words.text, value, words.negative), department


def driver_text(driver: Mapping, target_name: str, lang: str, specs: Mapping[str, FeatureSpec]) -> str:
    """One driver (a dict of :func:`serving.drivers.top_drivers`: feature, value, direction) told in ``lang``, as
    a driver of ``target_name``. English is exactly what ``top_drivers`` says; Chinese, for example,
    "近30天有3次检查不合格（质量部）使一次验收不合格风险上升"."""
    feature, value, direction = driver["feature"], driver.get("value"), driver["direction"]
    if _check(lang) == "en":
        return pushed(*describe(feature, value, specs), target(target_name), direction)
    text, department = describe_zh(feature, value, specs)
    outcome = ZH_OUTCOMES.get(target_name, target(target_name).outcome)
    return f"{text}（{department}）使{outcome}{ZH_DIRECTIONS[direction]}"


def _retell(answer, target_name: str, lang: str, specs: Mapping[str, FeatureSpec]) -> None:
    if isinstance(answer, dict):
        for driver in answer.get("drivers") or ():
            driver["text"] = driver_text(driver, target_name, lang, specs)


def translate_project(project: dict, lang: str, specs: Mapping[str, FeatureSpec]) -> dict:
    """A ProjectRisk-shaped dict (``model_dump()`` of an answer) with every driver's text in ``lang``: each open
    milestone's milestone targets and the project's client targets. A new dict (the input is left as it was);
    English returns ``project`` itself."""
    if _check(lang) == "en":
        return project
    out = copy.deepcopy(project)
    for milestone in out.get("milestones") or ():
        for spec in of_scope(MILESTONE):
            _retell(milestone.get(spec.name), spec.name, lang, specs)
    for spec in of_scope(CLIENT):
        _retell(out.get(spec.name), spec.name, lang, specs)
    return out
