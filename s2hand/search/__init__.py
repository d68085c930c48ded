"""Loss-weight selection by overfitting (supplementary s1): plan, run, log, report.

    from s2hand.search import GridSearchParams, build_plan, run_search, TrialStore, TrialScores
    plan = build_plan(GridSearchParams(profile="full", variant="s2hand_v"))   # 111 phase-2 runs
    result = run_search(plan, objective, TrialStore("trials.jsonl"), params.weights.model_dump())

plan.py (what is searched), runner.py (running it; the objective's contract), store.py (the
resumable trial log), report.py (tables, selected_weights.yaml, the apply command).
"""
from s2hand.config import GridSearchParams
from s2hand.search.plan import GROUPS, PHASE1_ORDER, SearchPlan, build_plan
from s2hand.search.report import apply_command, render_report, write_selected_weights
from s2hand.search.runner import (
    MissingTrial,
    MlflowTrialLogger,
    SearchResult,
    TrialScores,
    open_executor,
    run_search,
)
from s2hand.search.store import TrialRecord, TrialStore, trial_key

__all__ = [
    "GROUPS", "PHASE1_ORDER", "GridSearchParams", "MissingTrial", "MlflowTrialLogger", "SearchPlan", "SearchResult",
    "TrialRecord", "TrialScores", "TrialStore", "apply_command", "build_plan", "open_executor", "render_report",
    "run_search", "trial_key", "write_selected_weights",
]
