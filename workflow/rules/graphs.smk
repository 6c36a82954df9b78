# Stage 1: the cells of the search space as graphs (every NB201 cell; a seeded DARTS sample).


def build_graphs_parameters(wc):
    # Only a sampled space takes the section: editing it reruns no job of an enumerated space (NB201).
    return {"space": wc.space, **({} if space_is_enumerated(wc.space) else {"graphs": section("graphs")})}


rule build_graphs:
    input:
        notebook=notebook_code("01_graph_dataset"),
        code=lambda wc: code("01_graph_dataset", wc.space),
    output:
        **outputs("build_graphs"),
    log:
        notebook=log_notebook("build_graphs"),
    params:
        notebook=notebook("01_graph_dataset"),
        parameters=lambda wc, input, output: stage_parameters("build_graphs", wc, input, output, **build_graphs_parameters(wc)),
        settings=lambda wc: settings(build_graphs_parameters(wc)),
    resources:
        **resources("build_graphs"),
    conda:
        CONDA_ENV
    shell:
        NOTEBOOK_SHELL
