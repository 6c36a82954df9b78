# Stage 7: the report, every method and seed side by side.


def report_parameters(wc):
    return {"space": config["space"]}


rule report:
    input:
        unpack(get_report_inputs),
    output:
        **outputs("report"),
    log:
        notebook=log_notebook("report"),
    params:
        notebook=notebook("07_report"),
        parameters=lambda wc, input, output: stage_parameters("report", wc, input, output, {"space": config["space"]}, **report_parameters(wc)),
        settings=lambda wc: settings(report_parameters(wc)),
    resources:
        **resources("report"),
    conda:
        CONDA_ENV
    shell:
        NOTEBOOK_SHELL
