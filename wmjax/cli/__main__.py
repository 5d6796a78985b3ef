from wmjax.cli import app

app()
