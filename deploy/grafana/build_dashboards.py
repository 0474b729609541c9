"""Write the Grafana dashboards (``deploy/grafana/dashboards/*.json``) from this description.

    python deploy/grafana/build_dashboards.py            # write the JSON files
    python deploy/grafana/build_dashboards.py --check    # exit 1 if a file is out of date

It also copies the dashboards and the alert rules (``deploy/prometheus/rules/trade-matrix.yml``)
into the Helm chart (``helm/trade-matrix/files/``), which ships them as a Grafana dashboard
ConfigMap and a PrometheusRule (``monitoring.*`` values): Helm can only read files inside a chart.

Standard library only. Every query uses metrics the services export (``tests/deploy`` checks the
names against the running services' ``/metrics``). Panels that need a metric no service exports
yet are left out; the list is in ``MISSING`` below and in the report of issue 8.

Labels the queries rely on: ``service`` and ``system="trade-matrix"`` are target labels (set by the
compose Prometheus config and the chart's ServiceMonitor); the rest are the services' own labels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from infrastructure import infrastructure
from panels import (
    BAR_LOGS,
    BREAKER,
    INST,
    LISTING,
    REGIMES,
    RI,
    dashboard,
    explore_logs_url,
    logs,
    red_above,
    row,
    stat,
    state_timeline,
    table,
    timeseries,
    variable_logs_datasource,
    variable_query,
    variable_textbox,
)

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "dashboards"
CHART_FILES = ROOT / "helm" / "trade-matrix" / "files"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "trade-matrix.yml"

# Panels we would like and cannot draw yet: the metric that is missing, and who would export it.
MISSING = {
    "Trading Cockpit / Current tier per instrument": "a gauge of the last tier per instrument "
                                                     "(tm_sizer_decisions_total counts decisions)",
    "Market Analysis / Bar prices": "a close-price gauge per instrument (e.g. tm_ingest_last_close)",
    "Market Analysis / DVOL": "a DVOL gauge (e.g. tm_ingest_dvol, set when md.dvol is published)",
    "Institutional Analytics / Turnover": "traded notional (e.g. tm_portfolio_turnover_usdt or "
                                          "tm_executor_fill_notional_usdt_total)",
    "Institutional Analytics / Model age": "model creation time (e.g. tm_signal_model_created_"
                                           "timestamp_seconds); the *_model_info gauges carry only "
                                           "the version",
}


# -- the dashboards (Infrastructure: infrastructure.py) -----------------------------------------

def trading_cockpit() -> dict:
    p = [
        stat("Equity", ["max(tm_portfolio_equity_usdt)"], unit="currencyUSD", decimals=0,
             desc="Cash + unrealised PnL at the latest marks (portfolio)."),
        stat("Drawdown", ["max(tm_portfolio_drawdown_ratio)"], unit="percentunit",
             thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 0.03},
                         {"color": "red", "value": 0.05}]),
        stat("Max drawdown", ["max(tm_portfolio_max_drawdown_ratio)"], unit="percentunit"),
        stat("Circuit breaker", ["max(tm_risk_breaker_state)"], mappings=BREAKER,
             thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 1},
                         {"color": "red", "value": 2}]),
        stat("VaR 1d 99 %", ["max(tm_risk_var_ratio)"], unit="percentunit",
             thresholds=red_above(0.05), desc="Worse of parametric and historical VaR of the "
             "last decided portfolio, fraction of equity."),
        stat("Open orders", ["sum(tm_executor_open_orders)"]),
        row("Equity and drawdown"),
        timeseries("Equity", [("max(tm_portfolio_equity_usdt)", "equity"),
                              ("max(tm_portfolio_peak_equity_usdt)", "peak")],
                   unit="currencyUSD"),
        timeseries("Drawdown", [("max(tm_portfolio_drawdown_ratio)", "portfolio"),
                                ("max(tm_risk_drawdown_ratio)", "breaker view"),
                                ("max(tm_portfolio_max_drawdown_ratio)", "max")],
                   unit="percentunit", minimum=0),
        row("Sizing"),
        timeseries("Cascade tier decisions (per 4h)",
                   [("sum by (tier) (increase(tm_sizer_decisions_total[4h]))", "{{tier}}")],
                   bars=True, stack=True,
                   desc="EMERGENCY_FLAT, FULL_RL, BLENDED, PURE_KELLY, flat (ARCHITECTURE §7)."),
        timeseries("Target fraction of equity",
                   [("max by (instrument) (tm_sizer_target_fraction)", "{{instrument}}")],
                   unit="percentunit"),
        timeseries("Decisions with a stale regime (per 4h)",
                   [("sum by (instrument, cause) (increase(tm_sizer_regime_stale_total[4h]))",
                     "{{instrument}} {{cause}}")], bars=True),
        timeseries("Breaker as each service sees it",
                   [("max(tm_risk_breaker_state)", "risk"), ("max(tm_sizer_breaker_state)", "sizer")],
                   desc="0 CLOSED, 1 HALF_OPEN, 2 OPEN; the sizer follows risk.breaker."),
        row("Positions and PnL"),
        timeseries("Positions (base coin)",
                   [("sum by (instrument) (tm_portfolio_position_qty)", "{{instrument}}")]),
        timeseries("PnL and costs", [("max(tm_portfolio_realised_pnl_usdt)", "realised"),
                                     ("max(tm_portfolio_unrealised_pnl_usdt)", "unrealised"),
                                     ("-max(tm_portfolio_fees_usdt)", "fees"),
                                     ("-max(tm_portfolio_funding_usdt)", "funding")],
                   unit="currencyUSD"),
        row("Circuit breaker and orders"),
        state_timeline("Breaker state", [("max(tm_risk_breaker_state)", "breaker")],
                       mappings=BREAKER),
        timeseries("Breaker transitions by trigger",
                   [(f"sum by (trigger, to_state) (increase(tm_risk_breaker_transitions_total[{RI}]))",
                     "{{trigger}} -> {{to_state}}")], bars=True),
        timeseries("Orders approved (per 4h)",
                   [("sum by (instrument, kind) (increase(tm_risk_orders_approved_total[4h]))",
                     "{{instrument}} {{kind}}")], bars=True),
        timeseries("Targets rejected or skipped (per 4h)",
                   [("sum by (reason) (increase(tm_risk_orders_rejected_total[4h]))",
                     "{{reason}}")], bars=True),
        timeseries("Orders by final status (per 4h)",
                   [("sum by (status) (increase(tm_executor_orders_total[4h]))", "{{status}}")],
                   bars=True),
        timeseries("VaR by method", [("max by (method) (tm_risk_var_ratio)", "{{method}}")],
                   unit="percentunit"),
        timeseries("Consecutive executor rejections",
                   [("max(tm_risk_exec_failures)", "failures")],
                   desc="The breaker opens at TM_RISK_EXEC_FAILURE_LIMIT (3 by default)."),
        timeseries("Venue stop loss",
                   [("max by (instrument) (tm_executor_unprotected_positions)",
                     "{{instrument}} without its stop"),
                    ('sum by (instrument) (increase(tm_executor_fills_total{source="stop"}[4h]))',
                     "{{instrument}} closed by the stop")], bars=True,
                   desc="The stop loss the executor keeps on the venue under each position "
                   "(TM_EXECUTOR_VENUE_STOP_LOSS): a position lacking it (TMPositionUnprotected), "
                   "and closes the venue made (TMVenueStopFilled: the mesh did not act first)."),
        timeseries("Money moved outside the mesh",
                   [("max(tm_portfolio_transfers_usdt)", "transfers booked (cumulative)"),
                    ("sum by (direction) (increase(tm_executor_balance_reconciled_usdt_total[4h]))",
                     "adopted {{direction}} (per 4h)")], unit="currencyUSD",
                   desc="Differences between the venue's wallet and the portfolio's cash, adopted "
                   "as external flows (BalanceReconciled, TMBalanceAdopted): deposits, "
                   "withdrawals, a balance other than the configured initial equity."),
        timeseries("Foreign positions",
                   [("max by (instrument) (tm_executor_foreign_positions)", "{{instrument}}")],
                   desc="Open positions in symbols the executor does not trade (not in "
                   "TM_SYMBOLS): a warning, never reconciled."),
        state_timeline("Listing on the venue",
                       [("min by (instrument) (tm_risk_instrument_trading)", "{{instrument}}")],
                       mappings=LISTING, desc="Each traded instrument's instruments-info status "
                       "as risk read it: not Trading = flat or no new exposure "
                       "(TMInstrumentNotTrading); a scheduled delisting: "
                       "TMInstrumentDelistingScheduled."),
        *follow_one_bar(),
    ]
    return dashboard("tm-trading-cockpit", "Trade-Matrix / Trading Cockpit",
                     "Equity, drawdown, positions, circuit breaker and orders.", p,
                     variables=[variable_logs_datasource(),
                                variable_textbox("correlation_id", "Bar (correlation id)")],
                     links=[{"title": "Follow one bar (logs in Explore)", "type": "link",
                             "url": explore_logs_url(BAR_LOGS % "${correlation_id}",
                                                    datasource_uid="${logs}"),
                             "targetBlank": True, "icon": "doc",
                             "tooltip": "Every log line of the bar in the correlation id box"}])


#: A bar's correlation id is "<instrument>:<open time ms>" (tm_ingest.publisher.bar_envelope);
#: every event of its chain (signal, sizing, risk, order, fill) carries it, and so does every
#: log line written while handling them.
BAR_ID = "${__field.labels.instrument}:${__value.raw}"


def follow_one_bar() -> list[dict]:
    """The cockpit's way from a bar to its logs: the newest bar of each instrument (click: its
    logs, in this dashboard or in Explore), and the logs of the bar in ``$correlation_id``."""
    newest = stat("Newest bar per instrument (click: follow it in the logs)",
                  [("max by (instrument) (tm_ingest_last_bar_open_time_seconds) * 1000",
                    "{{instrument}}")], unit="dateTimeAsIso", w=24, h=4,
                  desc="Open time of each instrument's newest bar. Its correlation id is "
                  "<instrument>:<open time ms>; the links show every log line of that bar "
                  "across the services (ingest, signal, sizer, risk, executor, portfolio).")
    newest["fieldConfig"]["defaults"]["links"] = [
        {"title": "Logs of this bar (below)", "targetBlank": False,
         "url": "/d/tm-trading-cockpit/?var-correlation_id=" + BAR_ID + "&${__url_time_range}"},
        {"title": "Logs of this bar (Explore)", "targetBlank": True,
         "url": explore_logs_url(BAR_LOGS % BAR_ID, datasource_uid="${logs}")},
    ]
    return [
        row("Follow one bar (logs)"),
        newest,
        logs("Logs of one bar: $correlation_id", BAR_LOGS % "$correlation_id",
             desc="Every service's log lines of the bar whose correlation id is in the box at "
             "the top (<instrument>:<open time ms>, e.g. BTCUSDT:1735689600000), oldest first."),
    ]


def market_analysis() -> dict:
    regime_code = (
        f'sum by (instrument) ((tm_regime_label{{label="Bull",{INST}}} * 3) or '
        f'(tm_regime_label{{label="Neutral",{INST}}} * 2) or '
        f'(tm_regime_label{{label="Bear",{INST}}} * 1) or '
        f'(tm_regime_label{{label="Crisis",{INST}}} * 0))')
    p = [
        stat("Newest bar age", [((f"time() - max by (instrument) "
                                 f"(tm_ingest_last_bar_open_time_seconds{{{INST}}})"),
                                 "{{instrument}}")], unit="s", w=12,
             thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 28800},
                         {"color": "red", "value": 43200}],
             desc="Now minus the open time of the newest published bar: 4h..8h is normal for 4h "
             "bars; the stale-data alert fires beyond 12h."),
        stat("Venue replay clock (paper)", [("max(tm_exchange_sim_clock_timestamp_seconds) * 1000",
                                             "sim")], unit="dateTimeAsIso", w=6,
             desc="Open time of the latest closed bar of the exchange simulator."),
        stat("Replay progress", [("max(tm_ingest_replay_progress_ratio)", "replay")],
             unit="percentunit", w=6),
        row("Bars"),
        timeseries("Bars published (per 4h)",
                   [(f"sum by (instrument, source) (increase(tm_ingest_bars_published_total{{{INST}}}[4h]))",
                     "{{instrument}} {{source}}")], bars=True),
        timeseries("Gaps and skipped bars (per 4h)",
                   [(f"sum by (instrument) (increase(tm_ingest_gap_bars_total{{{INST}}}[4h]))",
                     "missing {{instrument}}"),
                    ("sum by (reason) (increase(tm_ingest_bars_skipped_total[4h]))",
                     "skipped {{reason}}"),
                    ("sum by (source) (increase(tm_ingest_bad_input_total[4h]))",
                     "bad input {{source}}")], bars=True),
        row("Regimes"),
        state_timeline("Regime", [(regime_code, "{{instrument}}")], mappings=REGIMES, w=24,
                       desc="HMM + GARCH regime per instrument (regime service)."),
        timeseries("Regime probabilities",
                   [(f"max by (instrument, label) (tm_regime_probability{{{INST}}})",
                     "{{instrument}} {{label}}")], unit="percentunit", minimum=0),
        timeseries("Kelly fraction of the regime",
                   [(f"max by (instrument) (tm_regime_kelly_fraction{{{INST}}})",
                     "{{instrument}}")], unit="percentunit", minimum=0),
        row("Volatility"),
        timeseries("GARCH volatility (one 4h bar ahead)",
                   [(f"max by (instrument) (tm_regime_volatility{{{INST}}})", "{{instrument}}")],
                   unit="percentunit"),
        timeseries("GARCH volatility, annualised",
                   [(f"max by (instrument) (tm_regime_volatility{{{INST}}}) * 46.797",
                     "{{instrument}}")], unit="percentunit",
                   desc="Per-bar sigma x sqrt(2190 bars per year) = x 46.797."),
        row("Signals"),
        timeseries("Signals by direction (per 4h)",
                   [(f"sum by (instrument, direction) (increase(tm_signal_signals_total{{{INST}}}[4h]))",
                     "{{instrument}} {{direction}}")], bars=True),
        timeseries("Signals without a prediction (per 4h)",
                   [(f"sum by (instrument, cause) (increase(tm_signal_zero_confidence_total{{{INST}}}[4h]))",
                     "{{instrument}} {{cause}}")], bars=True),
        timeseries("Live IC (rolling Spearman)",
                   [(f"max by (instrument) (tm_signal_live_ic{{{INST}}})", "{{instrument}}")],
                   w=24, desc="NaN (no line) until enough predictions have matured."),
    ]
    return dashboard("tm-market-analysis", "Trade-Matrix / Market Analysis",
                     "Bars, regimes, volatility and signals per instrument.", p,
                     variables=[variable_query("instrument",
                                               "label_values(tm_regime_volatility, instrument)",
                                               "Instrument")])


def institutional_analytics() -> dict:
    p = [
        stat("Sharpe (annualised)", ["max(tm_portfolio_sharpe_ratio)"], decimals=2, w=6),
        stat("Sortino (annualised)", ["max(tm_portfolio_sortino_ratio)"], decimals=2, w=6),
        stat("Max drawdown", ["max(tm_portfolio_max_drawdown_ratio)"], unit="percentunit", w=6),
        stat("Fees + funding paid", ["max(tm_portfolio_fees_usdt) + max(tm_portfolio_funding_usdt)"],
             unit="currencyUSD", w=6),
        row("Risk-adjusted returns"),
        timeseries("Sharpe and Sortino", [("max(tm_portfolio_sharpe_ratio)", "Sharpe"),
                                          ("max(tm_portfolio_sortino_ratio)", "Sortino")],
                   desc="Of snapshot returns, annualised (2190 bars per year)."),
        timeseries("Realised PnL vs costs", [("max(tm_portfolio_realised_pnl_usdt)", "realised PnL"),
                                             ("max(tm_portfolio_fees_usdt)", "fees"),
                                             ("max(tm_portfolio_funding_usdt)", "funding")],
                   unit="currencyUSD"),
        row("Costs and activity"),
        timeseries("Fees per day", [("delta(max(tm_portfolio_fees_usdt)[1d:1h])", "fees")],
                   unit="currencyUSD", bars=True),
        timeseries("Fills per day (activity; notional turnover has no metric yet)",
                   [("sum by (instrument) (increase(tm_executor_fills_total[1d]))",
                     "{{instrument}}")], bars=True),
        row("Signal quality and models"),
        timeseries("Live IC over time", [("max by (instrument) (tm_signal_live_ic)",
                                          "{{instrument}}")], w=24,
                   desc="Rolling Spearman IC of matured predictions; the cascade needs >= 0.05 "
                   "for FULL_RL."),
        table("Models in production",
              '(max by (service, version) (tm_signal_model_info == 1)) or '
              '(max by (service, version) (tm_regime_model_info == 1)) or '
              '(max by (service, version, usable) (tm_sizer_policy_info == 1))',
              desc="version=\"none\": no production model loaded; usable=0: the RL policy "
              "failed its gate (the cascade uses Kelly)."),
        timeseries("Model (re)loads by result",
                   [("sum by (result) (increase(tm_signal_model_reloads_total[1d]))", "signal {{result}}"),
                    ("sum by (result) (increase(tm_regime_model_reloads_total[1d]))", "regime {{result}}"),
                    ("sum by (result) (increase(tm_sizer_policy_reloads_total[1d]))", "sizer {{result}}")],
                   bars=True),
        state_timeline("Signal model version", [("max by (version) (tm_signal_model_info) == 1",
                                                 "{{version}}")],
                       mappings=[], w=12),
        state_timeline("Regime model version", [("max by (version) (tm_regime_model_info) == 1",
                                                 "{{version}}")],
                       mappings=[], w=12),
    ]
    return dashboard("tm-institutional-analytics", "Trade-Matrix / Institutional Analytics",
                     "Risk-adjusted performance, costs, signal quality and model versions.", p,
                     time_from="now-30d")


DASHBOARDS = {
    "trading-cockpit.json": trading_cockpit,
    "market-analysis.json": market_analysis,
    "institutional-analytics.json": institutional_analytics,
    "infrastructure.json": infrastructure,
}


def render() -> dict[str, str]:
    """file name → JSON text (stable: same input, same bytes)."""
    return {name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
            for name, build in DASHBOARDS.items()}


def outputs(out: Path) -> dict[Path, str]:
    """Every file this script owns → its content."""
    files = {}
    for name, text in render().items():
        files[out / name] = text
        files[CHART_FILES / "dashboards" / name] = text
    files[CHART_FILES / "rules" / RULES.name] = RULES.read_text()
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a file differs")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    stale = []
    for path, text in outputs(args.out).items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check and stale:
        print(f"out of date: {', '.join(map(str, stale))} (run {Path(__file__).name})",
              file=sys.stderr)
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
