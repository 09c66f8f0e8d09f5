from strongbox.cli.main import app

app(prog_name="strongbox")
