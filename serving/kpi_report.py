"""The KPI gap report as one self-contained HTML page: inline CSS, charts as inline SVG written here, no script,
no external resource (it opens offline and prints as it shows). Pure rendering of :mod:`serving.kpi`'s results.

Every value from the data (ids, project types, regions, milestone kinds, the data folder) goes through
:func:`esc` (``html.escape``), so markup in a field shows as text. Headings and labels come from :data:`STRINGS`,
one dict per language: English, and Simplified Chinese in the words of the GLOSSARY.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import pandas as pd

from serving.kpi import (
    DAYS,
    EMPTY_COLUMN,
    HOURS,
    NO_CHAMPIONS,
    NO_ROWS,
    NO_TABLE,
    NONE_KNOWN,
    RATIO,
    SCORE,
    SHARE,
    UNKNOWN,
    Forecast,
    KpiResult,
    KpiSpec,
    NoForecast,
)

LANGS = ("en", "zh")
SEGMENT_ROWS = 10  # a breakdown table's rows at most (the worst gaps); the rest are counted

EN = {
    "html_lang": "en",
    "title": "Quality-service gap report",
    "subtitle": "KPIs of the engineering quality-service management system (EQSMS) against their targets",
    "data_dir": "Data folder",
    "as_of": "As of",
    "facts_rule": "A fact counts only if it is known by the as-of date.",
    "absent_tables": "Tables absent from the data folder",
    "summary": "KPIs against targets, worst gap first",
    "kpi": "KPI",
    "value": "Value",
    "target": "Target",
    "shortfall": "Shortfall",
    "gap": "Gap (share of target)",
    "facts": "Facts",
    "status": "Status",
    "meets": "meets target",
    "behind": "behind target",
    "not_measurable": "Not measurable",
    "not_measurable_why": "not measurable ({why})",
    "details": "The gaps in detail",
    "trend": "Trend per quarter",
    "by_project_type": "By project type",
    "by_region": "By region",
    "segment": "Segment",
    "not_given": "Not given in the data (projects.{column} is empty).",
    "more_segments": "… and {n} more",
    "projects_behind": "Projects behind the gap",
    "projects_below": "Projects below the target (the KPI meets it overall)",
    "no_projects": "No project widens the gap.",
    "project": "Project",
    "project_type": "Type",
    "region": "Region",
    "project_value": "Project's value",
    "contribution": "Part of the gap",
    "over_target": "{n:.0f} over target",
    "unknown": "(unknown)",
    "forecast": "Forecast: next quarter",
    "forecast_none": "No forecast: there are no champion models in the MLflow store {uri}. Create them with "
    "<code>eqsms train --promote</code> (or point MLFLOW_TRACKING_URI at the store that has them); the rest of "
    "the report does not need them.",
    "forecast_failed": "No forecast: the models could not score the open milestones ({why}).",
    "forecast_empty": "No open milestone is planned in {quarter}: nothing to forecast.",
    "forecast_intro": "The {n} milestones open at the as-of date and planned in {quarter}, scored by the champion "
    "models ({models}) as of that date.",
    "forecast_method": "Expected rate: the mean of 1 − P(first-pass failure), or of 1 − P(late). Range: the "
    "{lo:g}th to {hi:g}th percentiles of the share, from the exact Poisson-binomial distribution of the number of "
    "milestones accepted (on time), taking milestones as independent.",
    "not_begun": "{n} milestones of projects not begun by the as-of date are left out (the models score a project "
    "from its planned start).",
    "expected": "Expected",
    "range": "Range",
    "last_quarter": "Latest quarter",
    "riskiest": "Milestones most at risk of failing first-pass acceptance",
    "milestone": "Milestone",
    "kind": "Kind",
    "planned": "Planned",
    "p_defect": "P(first-pass failure)",
    "p_late": "P(late)",
    "forecast_point": "forecast {quarter}",
    "forecast_word": "forecast",
    "held_up": "Predicted vs happened",
    "held_up_note": "Milestones reached with a defect-risk prediction in the prediction log made before they were "
    "reached (the latest one): the first-pass rate the predictions expected (10–90% range) and the rate that "
    "happened.",
    "quarter": "Quarter",
    "milestones": "Milestones",
    "predicted": "Predicted",
    "happened": "Happened",
    "definitions": "How each KPI is measured",
    "ranking": "Gaps are ranked by the shortfall as a share of the target (NPS: of 100 points). A project's part "
    "of the gap: for rates, means and indices, the points of the overall gap it accounts for (the parts add up to "
    "the gap); for complaint times, the number of its complaints slower than the target. Targets are settings "
    "(EQSMS_* environment variables).",
    "reason": {
        NO_TABLE: "no {table} table in the data folder",
        NO_ROWS: "the {table} table has no rows",
        EMPTY_COLUMN: "{table}.{column} is empty",
        NONE_KNOWN: "no {table} with {column} known by the as-of date",
    },
    "units": {HOURS: "{v:.1f} h", DAYS: "{v:.1f} d", "pts": "{v:.1f} pts"},
    "names": {
        "first_pass": "First-pass acceptance rate",
        "on_time": "On-time milestone rate",
        "csat": "Customer satisfaction (CSAT), share satisfied",
        "nps": "Net promoter score (NPS)",
        "response_median": "Complaint first response, median",
        "response_p90": "Complaint first response, 90th percentile",
        "resolution_median": "Complaint resolution, median",
        "resolution_p90": "Complaint resolution, 90th percentile",
        "defects_per_inspection": "Defects per inspection",
        "failed_inspections": "Failed inspection rate",
        "rework": "Rework rate (inspections failed or conditional)",
        "spi": "Schedule performance index (SPI)",
        "cpi": "Cost performance index (CPI)",
    },
    "defs": {
        "first_pass": "Milestones reached by the as-of date with an acceptance result: the share accepted at their "
        "first acceptance inspection. Quarter: when reached.",
        "on_time": "Milestones due by the as-of date (planned date plus {tolerance:g} days passed): the share "
        "reached no more than {tolerance:g} days after the planned date (the late tolerance, late_tolerance_days, "
        "as the delay model's 'late'); one still open past that counts as late. Quarter: when planned.",
        "csat": "Survey answers with a csat score (1 to 5): the share satisfied, csat ≥ {satisfied:g} "
        "(csat_satisfied_min).",
        "nps": "Survey answers with a likelihood to recommend (0 to 10): the share of promoters (9, 10) minus the "
        "share of detractors (0 to 6), in points from −100 to 100.",
        "response_median": "Complaints answered by the as-of date: hours from receipt to first response, median. "
        "Complaints not yet answered are not in it. Quarter: when received.",
        "response_p90": "Complaints answered by the as-of date: hours from receipt to first response, 90th "
        "percentile (nine in ten were answered at least this fast). Quarter: when received.",
        "resolution_median": "Complaints resolved by the as-of date: days from receipt to resolution, median. "
        "Complaints not yet resolved are not in it. Quarter: when received.",
        "resolution_p90": "Complaints resolved by the as-of date: days from receipt to resolution, 90th percentile "
        "(nine in ten were resolved at least this fast). Quarter: when received.",
        "defects_per_inspection": "Inspections by the as-of date that record their defects: defects found per "
        "inspection.",
        "failed_inspections": "Inspections by the as-of date: the share whose result is fail.",
        "rework": "Inspections by the as-of date: the share whose work must be redone (result fail, or pass on "
        "conditions). The data contract has no re-inspection record; this is the rework signal it has.",
        "spi": "Resource weeks over by the as-of date: earned value over planned value, summed (below 1: behind plan).",
        "cpi": "Resource weeks over by the as-of date: earned value over actual cost, summed (below 1: over budget).",
    },
}

ZH = {
    "html_lang": "zh-Hans",
    "title": "服务质量差距报告",
    "subtitle": "工程服务质量管理体系（EQSMS）各项指标与目标的差距",
    "data_dir": "数据文件夹",
    "as_of": "截至",
    "facts_rule": "只统计截至日期前已知的事实。",
    "absent_tables": "数据文件夹中缺少的表",
    "summary": "指标与目标对比（差距最大者在前）",
    "kpi": "指标",
    "value": "实际值",
    "target": "目标",
    "shortfall": "差距",
    "gap": "差距（占目标比例）",
    "facts": "记录数",
    "status": "状态",
    "meets": "达标",
    "behind": "未达标",
    "not_measurable": "无法计算",
    "not_measurable_why": "无法计算（{why}）",
    "details": "差距详情",
    "trend": "按季度趋势",
    "by_project_type": "按项目类型",
    "by_region": "按区域",
    "segment": "分组",
    "not_given": "数据中未提供（projects.{column} 为空）。",
    "more_segments": "……另有 {n} 组",
    "projects_behind": "造成差距的项目",
    "projects_below": "未达目标的项目（该指标总体已达标）",
    "no_projects": "没有项目扩大差距。",
    "project": "项目",
    "project_type": "类型",
    "region": "区域",
    "project_value": "项目实际值",
    "contribution": "占差距",
    "over_target": "{n:.0f} 条超过目标",
    "unknown": "（未知）",
    "forecast": "预测：下一季度",
    "forecast_none": "无预测：MLflow 模型库 {uri} 中没有 champion 模型。请运行 <code>eqsms train --promote</code> "
    "生成（或将 MLFLOW_TRACKING_URI 指向已有模型的库）；报告的其余部分不依赖模型。",
    "forecast_failed": "无预测：模型无法为未完成的节点评分（{why}）。",
    "forecast_empty": "{quarter} 没有计划中的未完成节点，无需预测。",
    "forecast_intro": "截至日期时未完成、计划于 {quarter} 的 {n} 个节点，由 champion 模型（{models}）按截至日期评分。",
    "forecast_method": "预期值：1 − 一次验收不合格概率（或 1 − 延误概率）的平均值。"
    "区间：按节点相互独立，由验收合格（按期）节点数的精确泊松二项分布得出比例的第 {lo:g} 至第 {hi:g} 百分位。",
    "not_begun": "截至日期前尚未开工项目的 {n} 个节点未计入（模型从项目计划开工日起评分）。",
    "expected": "预期",
    "range": "区间",
    "last_quarter": "最近季度",
    "riskiest": "一次验收不合格风险最高的节点",
    "milestone": "节点",
    "kind": "类型",
    "planned": "计划日期",
    "p_defect": "一次验收不合格概率",
    "p_late": "延误概率",
    "forecast_point": "{quarter} 预测",
    "forecast_word": "预测",
    "held_up": "预测与实际",
    "held_up_note": "预测日志中在节点完成前做出的一次验收不合格风险预测（取最后一次）所对应的已完成节点：预测的一次验收"
    "合格率（10–90% 区间）与实际合格率。",
    "quarter": "季度",
    "milestones": "节点数",
    "predicted": "预测",
    "happened": "实际",
    "definitions": "各项指标的计算方法",
    "ranking": "差距按“差距占目标的比例”排序（净推荐值按 100 分计）。"
    "项目占差距：对比率、平均值和指数，为该项目所占的总体差距点数（各项目之和等于总体差距）；"
    "对投诉时长，为该项目超过目标的投诉条数。目标在设置中（EQSMS_* 环境变量）。",
    "reason": {
        NO_TABLE: "数据文件夹中没有 {table} 表",
        NO_ROWS: "{table} 表没有记录",
        EMPTY_COLUMN: "{table}.{column} 为空",
        NONE_KNOWN: "截至日期前没有含 {column} 的 {table} 记录",
    },
    "units": {HOURS: "{v:.1f} 小时", DAYS: "{v:.1f} 天", "pts": "{v:.1f} 个百分点"},
    "names": {
        "first_pass": "一次验收合格率",
        "on_time": "节点按期完成率",
        "csat": "客户满意度（满意占比）",
        "nps": "净推荐值（NPS）",
        "response_median": "客户投诉首次响应时间（中位数）",
        "response_p90": "客户投诉首次响应时间（90 分位）",
        "resolution_median": "客户投诉处理完成时间（中位数）",
        "resolution_p90": "客户投诉处理完成时间（90 分位）",
        "defects_per_inspection": "每次检查缺陷数",
        "failed_inspections": "检查不合格率",
        "rework": "返工率（检查不合格或有条件通过）",
        "spi": "进度绩效指数（SPI）",
        "cpi": "成本绩效指数（CPI）",
    },
    "defs": {
        "first_pass": "截至日期前已完成且有验收结果的节点中，首次验收即合格的比例。季度：按完成日期。",
        "on_time": "截至日期前已到期的节点（计划日期加 {tolerance:g} 天已过）中，"
        "在计划日期后 {tolerance:g} 天内完成的比例（延误容差 late_tolerance_days，与工期延误模型的“延误”一致）；"
        "超过该期限仍未完成的计为延误。季度：按计划日期。",
        "csat": "有满意度评分（1 至 5）的调查答复中，满意（评分 ≥ {satisfied:g}，csat_satisfied_min）的比例。",
        "nps": "有推荐意愿评分（0 至 10）的调查答复中，推荐者（9、10）比例减去贬损者（0 至 6）比例，取值 −100 至 100。",
        "response_median": "截至日期前已响应的投诉：从收到到首次响应的小时数，中位数。"
        "尚未响应的投诉不计入。季度：按收到日期。",
        "response_p90": "截至日期前已响应的投诉：从收到到首次响应的小时数，90 分位（十条中有九条不慢于此）。"
        "季度：按收到日期。",
        "resolution_median": "截至日期前已处理完成的投诉：从收到到处理完成的天数，中位数。"
        "尚未完成的投诉不计入。季度：按收到日期。",
        "resolution_p90": "截至日期前已处理完成的投诉：从收到到处理完成的天数，90 分位（十条中有九条不慢于此）。"
        "季度：按收到日期。",
        "defects_per_inspection": "截至日期前记录了缺陷数的检查：每次检查发现的缺陷数。",
        "failed_inspections": "截至日期前的检查中，结果为不合格的比例。",
        "rework": "截至日期前的检查中，需要返工（不合格或有条件通过）的比例。"
        "数据规范中没有复检记录，这是现有的返工信号。",
        "spi": "截至日期前已结束的资源周：挣值除以计划值（合计）；低于 1 表示进度落后。",
        "cpi": "截至日期前已结束的资源周：挣值除以实际成本（合计）；低于 1 表示超支。",
    },
}

STRINGS = {"en": EN, "zh": ZH}


@dataclass
class Report:
    """What the page shows: the data folder, the as-of date, every KPI's result, the forecast (or why none)."""

    data_dir: str
    as_of: pd.Timestamp
    results: list[KpiResult]
    forecast: Forecast | NoForecast
    tolerance_days: float
    satisfied_min: float
    absent_tables: tuple[str, ...] = ()
    held_up: pd.DataFrame | None = None  # serving.kpi.predicted_vs_happened of the prediction log, when it has any


def esc(value: object) -> str:
    """Any value as HTML text: markup in it shows as text."""
    return html.escape(str(value), quote=True)


# ------------------------------------------------------------------------------------------------- numbers


def fmt(value: float, unit: str, lang: str = "en") -> str:
    """A KPI's value in its unit (``86.6%``, ``19.4 h``, ``0.98``); a missing value as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit == SHARE:
        return f"{value * 100:.1f}%"
    if unit in (HOURS, DAYS):
        return STRINGS[lang]["units"][unit].format(v=value)
    if unit == SCORE:
        return f"{value:.1f}"
    return f"{value:.2f}"  # INDEX, COUNT


def fmt_shortfall(value: float, unit: str, lang: str = "en") -> str:
    """A shortfall (or a project's part of one) in the KPI's unit: points for a share."""
    if unit == SHARE and not math.isnan(value):
        return STRINGS[lang]["units"]["pts"].format(v=value * 100)
    return fmt(value, unit, lang)


def target_text(spec: KpiSpec, lang: str = "en") -> str:
    return f"{'≥' if spec.higher_is_better else '≤'} {fmt(spec.target, spec.unit, lang)}"


def reason_text(result: KpiResult, lang: str = "en") -> str:
    why = result.not_measurable
    return STRINGS[lang]["reason"][why.code].format(table=why.table, column=why.column)


def name(result: KpiResult, lang: str = "en") -> str:
    return STRINGS[lang]["names"][result.spec.key]


def worst_gap_text(results: list[KpiResult], lang: str = "en") -> str:
    """The worst gap in one phrase (``Rework rate ...: 34.0% against ≤ 20.0%``), or that every target is met."""
    behind = [r for r in results if r.measurable and r.gap > 0]
    if not behind:
        return "every measurable KPI meets its target" if lang == "en" else "所有可计算指标均达标"
    r = behind[0]  # the results come worst gap first
    return f"{name(r, lang)}: {fmt(r.value, r.spec.unit, lang)} / {target_text(r.spec, lang)}"


# ----------------------------------------------------------------------------------------------------- SVG

W, H, LEFT, RIGHT, TOP, BOTTOM = 680, 220, 64, 96, 14, 34
# Presentation attributes, not CSS classes: a PDF renderer (WeasyPrint) draws inline SVG without the page's CSS.
PAINT = {
    "grid": 'stroke="#e6ebf0" stroke-width="1"',
    "tick": 'font-size="10" fill="#56616d" font-family="sans-serif"',
    "target": 'stroke="#b3261e" stroke-width="1.5" stroke-dasharray="6 4"',
    "target-label": 'font-size="10" fill="#b3261e" font-family="sans-serif"',
    "line": 'fill="none" stroke="#2c5d8f" stroke-width="2"',
    "dot-ok": 'fill="#1d7a3a"',
    "dot-gap": 'fill="#b3261e"',
    "ahead": 'stroke="#c26a00" stroke-width="1.5" stroke-dasharray="3 3"',
    "range": 'stroke="#c26a00" stroke-width="3"',
    "forecast": 'fill="#ffffff" stroke="#c26a00" stroke-width="2"',
    "forecast-label": 'font-size="10" fill="#c26a00" font-family="sans-serif"',
}


def trend_svg(
    quarters: pd.DataFrame, spec: KpiSpec, lang: str, point: tuple[str, float, float, float] | None = None
) -> str:
    """A line chart of the KPI per quarter (``summarise(..., "quarter")``) with its target as a dashed line, and
    ``point`` (quarter, expected, low, high), the forecast, as a hollow dot with its range."""
    labels = list(quarters["segment"]) + ([point[0]] if point else [])
    values = [float(v) for v in quarters["value"]]
    known = [v for v in values if not math.isnan(v)]
    span = known + [spec.target] + ([point[2], point[3]] if point else [])
    lo, hi = min(span), max(span)
    pad = (hi - lo) * 0.08 or max(abs(hi) * 0.1, 0.01)
    lo, hi = lo - pad, hi + pad
    if spec.unit == SHARE:  # a share's axis stays within 0% .. 100%
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    k = len(labels)

    def x(i: int) -> float:
        return LEFT + (W - LEFT - RIGHT) * (i / (k - 1) if k > 1 else 0.5)

    def y(v: float) -> float:
        return TOP + (H - TOP - BOTTOM) * (hi - v) / (hi - lo)

    parts = [
        f'<svg class="chart" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        f'role="img" aria-label="{esc(STRINGS[lang]["trend"])}">'
    ]
    for j in range(5):  # gridlines and their values
        v = lo + (hi - lo) * j / 4
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" {PAINT["grid"]}/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" {PAINT["tick"]} text-anchor="end">')
        parts.append(f"{esc(fmt(v, spec.unit, lang))}</text>")
    every = max(1, math.ceil(k / 10))
    for i, label in enumerate(labels):
        if (i % every == 0 and i + every <= k - 1) or i == k - 1:  # the last always, none crowding it
            parts.append(f'<text x="{x(i):.1f}" y="{H - 12}" {PAINT["tick"]} text-anchor="middle">{esc(label)}</text>')
    t = y(spec.target)
    parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{t:.1f}" y2="{t:.1f}" {PAINT["target"]}/>')
    parts.append(f'<text x="{W - RIGHT + 4}" y="{t + 4:.1f}" {PAINT["target-label"]}>')
    parts.append(f"{esc(STRINGS[lang]['target'])} {esc(target_text(spec, lang))}</text>")
    points = [(x(i), y(v)) for i, v in enumerate(values) if not math.isnan(v)]
    if len(points) > 1:
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        parts.append(f'<polyline points="{path}" {PAINT["line"]}/>')
    for i, (v, n) in enumerate(zip(values, quarters["n"], strict=True)):
        if math.isnan(v):
            continue
        good = spec.shortfall(v) == 0
        tip = f"{labels[i]}: {fmt(v, spec.unit, lang)} (n = {n})"
        parts.append(
            f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.5" {PAINT["dot-ok" if good else "dot-gap"]}>'
            f"<title>{esc(tip)}</title></circle>"
        )
    if point:
        quarter, expected, low, high = point
        fx = x(k - 1)
        if points:
            px, py = points[-1]
            parts.append(f'<line x1="{px:.1f}" y1="{py:.1f}" x2="{fx:.1f}" y2="{y(expected):.1f}" {PAINT["ahead"]}/>')
        parts.append(f'<line x1="{fx:.1f}" x2="{fx:.1f}" y1="{y(low):.1f}" y2="{y(high):.1f}" {PAINT["range"]}/>')
        tip = f"{STRINGS[lang]['forecast_point'].format(quarter=quarter)}: {fmt(expected, spec.unit, lang)} "
        tip += f"[{fmt(low, spec.unit, lang)}, {fmt(high, spec.unit, lang)}]"
        parts.append(
            f'<circle cx="{fx:.1f}" cy="{y(expected):.1f}" r="4.5" {PAINT["forecast"]}>'
            f"<title>{esc(tip)}</title></circle>"
        )
        word = STRINGS[lang]["forecast_word"]
        parts.append(f'<text x="{fx + 8:.1f}" y="{y(expected) + 4:.1f}" {PAINT["forecast-label"]}>{esc(word)}</text>')
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------------- HTML

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans","Noto Sans CJK SC","Source Han Sans SC",
"PingFang SC","Microsoft YaHei","WenQuanYi Zen Hei",sans-serif;color:#1d2733;margin:0 auto;max-width:1040px;
padding:24px;line-height:1.45}
h1{font-size:1.7em;margin:0 0 4px}
h2{font-size:1.3em;margin:32px 0 8px;border-bottom:2px solid #d5dde6;padding-bottom:4px}
h3{font-size:1.1em;margin:26px 0 6px}h4{font-size:.95em;margin:12px 0 4px;color:#44515f}
.sub{color:#56616d;margin:0 0 12px}.meta{font-size:.9em;color:#44515f}.meta td{padding:1px 12px 1px 0}
table.data{border-collapse:collapse;font-size:.88em;margin:4px 0 8px}
table.data th,table.data td{border-bottom:1px solid #e2e7ed;padding:4px 10px;text-align:left;vertical-align:top}
table.data th{background:#f2f5f8;font-weight:600}table.data td.num{text-align:right;white-space:nowrap}
table.data tr{break-inside:avoid;page-break-inside:avoid}table.data td.na{overflow-wrap:anywhere}
.ok{color:#1d7a3a;font-weight:600}.bad{color:#b3261e;font-weight:600}.na{color:#7a6a00}
.kpi{break-inside:avoid;page-break-inside:avoid;border-top:1px solid #e2e7ed;padding-top:4px}
.row{display:flex;flex-wrap:wrap;gap:24px}.row>div{flex:1 1 300px;min-width:280px}
.note{font-size:.85em;color:#56616d}.big{font-size:1.05em}
svg.chart{max-width:100%;height:auto}
code{background:#f2f5f8;padding:1px 4px;border-radius:3px}
@page{size:A4;margin:12mm}
@media print{body{max-width:none;padding:0;font-size:10pt}h2,h3,h4{break-after:avoid}}
"""


def _table(head: list[str], rows: list[list[tuple[str, str]]]) -> str:
    """A table; each cell is (class, HTML already escaped)."""
    out = ['<table class="data"><thead><tr>', *(f"<th>{esc(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(f'<td class="{cls}">{cell}</td>' for cls, cell in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _segment(value: str, lang: str) -> str:
    return esc(STRINGS[lang]["unknown"] if value == UNKNOWN else value)


def _status(result: KpiResult, lang: str) -> tuple[str, str]:
    s = STRINGS[lang]
    return ("ok", esc(s["meets"])) if result.gap == 0 else ("bad", esc(s["behind"]))


def summary_table(results: list[KpiResult], lang: str) -> str:
    s = STRINGS[lang]
    rows = []
    for r in results:
        unit = r.spec.unit
        if r.measurable:
            rows.append(
                [
                    ("", f'<a href="#{r.spec.key}">{esc(name(r, lang))}</a>'),
                    ("num", esc(fmt(r.value, unit, lang))),
                    ("num", esc(target_text(r.spec, lang))),
                    ("num", esc(fmt_shortfall(r.overall["shortfall"].iloc[0], unit, lang))),
                    ("num", esc(f"{r.gap * 100:.1f}%")),
                    ("num", esc(f"{r.n:,}")),
                    _status(r, lang),
                ]
            )
        else:
            why = s["not_measurable_why"].format(why=reason_text(r, lang))
            rows.append(
                [("", esc(name(r, lang))), ("num", "–"), ("num", esc(target_text(r.spec, lang)))]
                + [("num", "–")] * 3
                + [("na", esc(why))]
            )
    head = [s["kpi"], s["value"], s["target"], s["shortfall"], s["gap"], s["facts"], s["status"]]
    return _table(head, rows)


def segment_table(result: KpiResult, by: str, lang: str) -> str:
    s = STRINGS[lang]
    frame = result.segments.get(by)
    if frame is None:
        return f'<p class="note">{esc(s["not_given"].format(column=by))}</p>'
    unit = result.spec.unit
    rows = [
        [
            ("", _segment(row.segment, lang)),
            ("num", esc(fmt(row.value, unit, lang))),
            ("num", esc(fmt_shortfall(row.shortfall, unit, lang))),
            ("num", esc(f"{row.n:,}")),
        ]
        for row in frame.head(SEGMENT_ROWS).itertuples()
    ]
    table = _table([s["segment"], s["value"], s["shortfall"], s["facts"]], rows)
    more = len(frame) - SEGMENT_ROWS
    return table + (f'<p class="note">{esc(s["more_segments"].format(n=more))}</p>' if more > 0 else "")


def projects_table(result: KpiResult, lang: str) -> str:
    s = STRINGS[lang]
    frame = result.projects
    if frame is None or frame.empty:
        return f'<p class="note">{esc(s["no_projects"])}</p>'
    spec = result.spec
    rows = []
    for row in frame.to_dict("records"):
        part = (
            fmt_shortfall(row["contribution"], spec.unit, lang)
            if spec.aggregate == RATIO
            else s["over_target"].format(n=row["contribution"])
        )
        rows.append(
            [
                ("", esc(row["project_id"])),
                ("", _segment(row.get("project_type", UNKNOWN), lang)),
                ("", _segment(row.get("region", UNKNOWN), lang)),
                ("num", esc(f"{row['n']:,}")),
                ("num", esc(fmt(row["value"], spec.unit, lang))),
                ("num", esc(part)),
            ]
        )
    head = [s["project"], s["project_type"], s["region"], s["facts"], s["project_value"], s["contribution"]]
    return _table(head, rows)


def _forecast_point(result: KpiResult, forecast: Forecast | NoForecast) -> tuple[str, float, float, float] | None:
    if not isinstance(forecast, Forecast) or not forecast.milestones:
        return None
    figures = {"first_pass": forecast.first_pass, "on_time": forecast.on_time}.get(result.spec.key)
    return (forecast.quarter, *figures) if figures else None


def kpi_section(result: KpiResult, report: Report, lang: str) -> str:
    s = STRINGS[lang]
    r, unit = result, result.spec.unit
    head = f'<h3 id="{esc(r.spec.key)}">{esc(name(r, lang))}</h3>'
    line = (
        f'<p class="big">{esc(fmt(r.value, unit, lang))} · {esc(s["target"])} {esc(target_text(r.spec, lang))} · '
        f'<span class="{_status(r, lang)[0]}">{_status(r, lang)[1]}</span></p>'
    )
    definition = s["defs"][r.spec.key].format(tolerance=report.tolerance_days, satisfied=report.satisfied_min)
    chart = trend_svg(r.segments["quarter"], r.spec, lang, _forecast_point(r, report.forecast))
    return "".join(
        [
            '<div class="kpi">',
            head,
            line,
            f'<p class="note">{esc(definition)}</p>',
            f"<h4>{esc(s['trend'])}</h4>",
            chart,
            '<div class="row"><div>',
            f"<h4>{esc(s['by_project_type'])}</h4>",
            segment_table(r, "project_type", lang),
            "</div><div>",
            f"<h4>{esc(s['by_region'])}</h4>",
            segment_table(r, "region", lang),
            "</div></div>",
            f"<h4>{esc(s['projects_behind' if r.gap > 0 else 'projects_below'])}</h4>",
            projects_table(r, lang),
            held_up_table(report.held_up, lang) if r.spec.key == "first_pass" else "",
            "</div>",
        ]
    )


def held_up_table(held_up: pd.DataFrame | None, lang: str) -> str:
    """The first-pass rate the logged predictions expected, beside what happened, a quarter a row."""
    if held_up is None or held_up.empty:
        return ""
    s = STRINGS[lang]
    rows = [
        [
            ("", esc(line.quarter)),
            ("num", f"{line.milestones:,}"),
            ("num", f"{fmt(line.predicted, SHARE, lang)} ({fmt(line.low, SHARE, lang)}–{fmt(line.high, SHARE, lang)})"),
            ("num", esc(fmt(line.happened, SHARE, lang))),
        ]
        for line in held_up.itertuples()
    ]
    head = [s["quarter"], s["milestones"], s["predicted"], s["happened"]]
    return f"<h4>{esc(s['held_up'])}</h4>{_table(head, rows)}<p class='note'>{esc(s['held_up_note'])}</p>"


def forecast_section(report: Report, lang: str) -> str:
    s, f = STRINGS[lang], report.forecast
    out = [f'<h2 id="forecast">{esc(s["forecast"])}</h2>']
    if isinstance(f, NoForecast):
        if f.code == NO_CHAMPIONS:
            out.append(f"<p>{s['forecast_none'].format(uri=f'<code>{esc(f.detail)}</code>')}</p>")
        else:
            out.append(f"<p>{esc(s['forecast_failed'].format(why=f.detail))}</p>")
        return "".join(out)
    if not f.milestones:
        out.append(f"<p>{esc(s['forecast_empty'].format(quarter=f.quarter))}</p>")
    else:
        models = ", ".join(f"{m} v{v}" for m, v in f.models.items())
        out.append(f"<p>{esc(s['forecast_intro'].format(n=f.milestones, quarter=f.quarter, models=models))}</p>")
        by_key = {r.spec.key: r for r in report.results}
        rows = []
        for key, (expected, low, high) in (("first_pass", f.first_pass), ("on_time", f.on_time)):
            r = by_key[key]
            last = r.segments["quarter"].iloc[-1] if r.measurable else None
            rows.append(
                [
                    ("", esc(name(r, lang))),
                    ("num", esc(fmt(expected, SHARE, lang))),
                    ("num", esc(f"{fmt(low, SHARE, lang)} – {fmt(high, SHARE, lang)}")),
                    ("num", esc(target_text(r.spec, lang))),
                    ("num", esc(fmt(last.value, SHARE, lang) + f" ({last.segment})" if last is not None else "–")),
                ]
            )
        head = [s["kpi"], s["expected"], s["range"], s["target"], s["last_quarter"]]
        out.append(_table(head, rows))
        tail = (1 - f.coverage) / 2 * 100
        out.append(f'<p class="note">{esc(s["forecast_method"].format(lo=tail, hi=100 - tail))}</p>')
        risky = [
            [
                ("", esc(row["milestone_id"])),
                ("", esc(row["project_id"])),
                ("", esc(row["kind"])),
                ("", esc(pd.Timestamp(row["planned_date"]).date())),
                ("num", esc(f"{row['p_defect'] * 100:.1f}%")),
                ("num", esc(f"{row['p_late'] * 100:.1f}%")),
            ]
            for row in f.riskiest.to_dict("records")
        ]
        out.append(f"<h4>{esc(s['riskiest'])}</h4>")
        out.append(_table([s["milestone"], s["project"], s["kind"], s["planned"], s["p_defect"], s["p_late"]], risky))
    if f.not_begun:
        out.append(f'<p class="note">{esc(s["not_begun"].format(n=f.not_begun))}</p>')
    return "".join(out)


def render(report: Report, lang: str = "en") -> str:
    """The whole report as one HTML document."""
    s = STRINGS[lang]
    measurable = [r for r in report.results if r.measurable]
    meta = [(s["data_dir"], report.data_dir), (s["as_of"], f"{report.as_of:%Y-%m-%d %H:%M}")]
    if report.absent_tables:
        meta.append((s["absent_tables"], ", ".join(report.absent_tables)))
    definitions = "".join(
        f"<li><b>{esc(name(r, lang))}</b>: "
        f"{esc(s['defs'][r.spec.key].format(tolerance=report.tolerance_days, satisfied=report.satisfied_min))}</li>"
        for r in sorted(report.results, key=lambda r: list(s["names"]).index(r.spec.key))
    )
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{s["html_lang"]}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(s['title'])} · {esc(f'{report.as_of:%Y-%m-%d}')}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{esc(s['title'])}</h1>",
        f'<p class="sub">{esc(s["subtitle"])}</p>',
        '<table class="meta">',
        *(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in meta),
        "</table>",
        f'<p class="note">{esc(s["facts_rule"])}</p>',
        f'<h2 id="summary">{esc(s["summary"])}</h2>',
        summary_table(report.results, lang),
        f'<p class="note">{esc(s["ranking"])}</p>',
        f'<h2 id="details">{esc(s["details"])}</h2>',
        *(kpi_section(r, report, lang) for r in measurable),
        forecast_section(report, lang),
        f'<h2 id="definitions">{esc(s["definitions"])}</h2>',
        f'<ul class="note">{definitions}</ul>',
        "</body></html>",
    ]
    return "\n".join(parts)
