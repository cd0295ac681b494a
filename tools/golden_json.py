"""The golden generators' output: a JSON file under tests/data written atomically (a temporary name, fsynced,
then renamed), so an interrupted run leaves the previous file whole."""
import json
import os


def write_golden(path, data, indent=None):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=indent)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
