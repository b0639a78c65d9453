"""demo: the single-neuron y = 2x - 1 demo, its own small task with its own short report.

A Dense(1) unit learns the line from six points and predicts y at x = 10 (the tutorial got
18.98). It uses no MNIST data and has no accuracy, so it is not a catalogue classifier.
"""

from __future__ import annotations

from typing import Any

from mnist_pipeline import import_tensorflow
from mnist_pipeline.config import DemoParams, parse_section
from mnist_pipeline.files import atomic_path, write_json
from mnist_pipeline.lineage import stage_code_digest
from mnist_pipeline.project_files import ProjectFiles
from tasks import log, run


def main(params: dict[str, Any], files: ProjectFiles) -> None:
    """Read `demo`; write the model, its record and its report."""
    settings = parse_section(params, "demo", DemoParams)
    import_tensorflow()
    from mnist_pipeline import demo
    from mnist_pipeline.training import save_model

    model, history = demo.fit_neuron(settings)
    record = demo.describe(model, history, settings)
    save_model(model, files.demo_model)
    write_json(files.demo_record, record)
    with atomic_path(files.demo_report) as tmp:
        tmp.write_text(demo.render(record, stage_code_digest("demo")))
    log(f"demo: y = {record['weight']:.4f} x {record['bias']:+.4f}; predict({settings.at:g}) = "
        f"{record['prediction']:.4f} (truth {record['truth']:g}, the tutorial {settings.claimed}); "
        f"{files.demo_report}")


if __name__ == "__main__":
    run("demo", main, __doc__, tensorflow=True)
