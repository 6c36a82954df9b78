# Stage 6: every method and seed side by side.


def report_parameters(wc):
    return {"space": config["space"]}


rule report:
    input:
        unpack(get_report_inputs),
    output:
        summary=f"{RESULTS}/report/summary.csv",
        html=f"{RESULTS}/report/report.html",  # the executed report without its code (workflow/scripts/finish_stage_run.py)
    log:
        notebook=f"{RESULTS}/report/report.ipynb",
    params:
        parameters=lambda wc, input, output: stage_parameters(
            "report", f"{RESULTS}/report/report.ipynb", wc, input, output, {"space": config["space"]},
            **report_parameters(wc),
        ),
        settings=lambda wc: settings(report_parameters(wc)),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=lambda wc, attempt: 60 * attempt,
        cpus_per_task=lambda wc, threads: threads,
    conda:
        CONDA_ENV
    shell:
        NOTEBOOK_SHELL
