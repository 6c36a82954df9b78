# Stage 2: the VGAE that maps cells injectively into the continuous ("equivalent") space.


def pretrain_vgae_parameters(wc):
    return {"space": wc.space, "vgae": section("vgae")}


rule pretrain_vgae:
    input:
        notebook=notebook_code("02_vgae_pretrain"),
        graphs=path("graphs", space="{space}"),
        code=lambda wc: code("02_vgae_pretrain", wc.space),
        tables=lambda wc: nb201_table_files(wc.space),
    output:
        **outputs("pretrain_vgae"),
    log:
        notebook=log_notebook("pretrain_vgae"),
    params:
        notebook=notebook("02_vgae_pretrain"),
        parameters=lambda wc, input, output: stage_parameters("pretrain_vgae", wc, input, output, **pretrain_vgae_parameters(wc)),
        settings=lambda wc: settings(pretrain_vgae_parameters(wc)),
    resources:
        **resources("pretrain_vgae"),
    conda:
        CONDA_ENV
    shell:
        NOTEBOOK_SHELL
