"""The wavenb Studio and a prompt comparison as a marimo app: `marimo run notebooks/marimo_studio.py`.

Both are anywidget front ends, which marimo displays (it does not display ipywidgets layouts).
Without WAVESPEED_API_KEY everything runs on the local sandbox: free, offline, labelled SANDBOX.
"""

import marimo

app = marimo.App(width="full", app_title="wavenb Studio")


@app.cell
def _():
    import marimo as mo

    import wavenb

    assets = mo.notebook_dir() / "assets"
    return assets, mo, wavenb


@app.cell
def _(assets, mo, wavenb):
    studio = wavenb.Studio(image=assets / "portrait-astronaut.jpg", prompt="Camera slowly zooms in on the subject")
    mo.vstack([mo.md("# wavenb Studio"), studio])
    return (studio,)


@app.cell
def _(assets, mo, wavenb):
    cmp = wavenb.compare(
        image=assets / "product-coffee.jpg",
        prompts={"A": "Slow orbit around the product, soft studio light", "B": "Camera slowly zooms in"},
        repeats=2,
    )
    mo.vstack([mo.md("## Two prompts, two runs each"), cmp.widget])
    return (cmp,)


if __name__ == "__main__":
    app.run()
