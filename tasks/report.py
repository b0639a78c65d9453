"""report: a markdown report with PNG plots that says what was trained on what, how well, and why.

Everything comes from the records the earlier stages wrote (fetch, validation, prepare, train,
evaluation) and dvc.lock, so the report's numbers are the pipeline's numbers. It holds no time (a
stage's seconds are in the timings folder), so identical work writes an identical report.
"""

from __future__ import annotations

from typing import Any

from mnist_pipeline.claims import Run, judge
from mnist_pipeline.config import ReportParams, parse_section
from mnist_pipeline.files import atomic_path, load_npz, read_json
from mnist_pipeline.lineage import code_digest, lock_stages
from mnist_pipeline.project_files import ProjectFiles
from mnist_pipeline.reporting.run_report import render, write_plots
from tasks import log, run


def main(params: dict[str, Any], files: ProjectFiles) -> None:
    """Read `report` and the stage records; write the run's report and its pictures."""
    settings = parse_section(params, "report", ReportParams)
    trained = read_json(files.train_record)
    fetched = read_json(files.fetch_record)
    evaluation, features = read_json(files.evaluation_record), read_json(files.features_record)
    run_facts = Run.from_records(fetched, trained, features, evaluation)
    # in the pipeline's order; not this report (dvc.lock still holds the last one's) nor the demo (not this run's)
    stages = {name: stage for name, stage in lock_stages(files.dvc_lock).items() if name not in ("report", "demo")}
    ctx: dict[str, Any] = {
        "fetch": fetched, "validation": read_json(files.validation_record),
        "prepare": read_json(files.prepare_record), "train": trained, "evaluation": evaluation,
        "verdict": judge(trained["spec"], run_facts), "samples_per_class": settings.samples_per_class,
        "code": code_digest(stages), "stages": stages,
    }
    files.report_dir.mkdir(parents=True, exist_ok=True)
    write_plots(files.report_dir, ctx, load_npz(files.raw_data))
    with atomic_path(files.report) as tmp:
        tmp.write_text(render(ctx))
    log(f"report: {files.report} (this experiment's own copy is kept by DVC: `dvc exp apply <name>` brings it "
        f"back; the reference catalogues under {files.folder('reports')}/ are written only by `mnist compare`)")


if __name__ == "__main__":
    run("report", main, __doc__)
