#!/usr/bin/env python3
"""Drives an OpenStack cloud with openstacksdk, as a user's script would.

Reads a plan, JSON, from the file named as first argument or from stdin:
    {"steps": [{"do": "token"}, {"do": "create_server", "name": ..., ...}, ...]}
runs its steps in order on one connection and prints {"results": [...]}, one JSON object per
step. On a failing step it prints {"results": [...before it...], "error": {"step", "do",
"type", "message"}} and exits 1. The credentials come from the environment (OS_* variables,
or OS_CLOUD with OS_CLIENT_CONFIG_FILE), as for the `openstack` command.
Standard library and openstacksdk only.
"""
import base64
import json
import sys

import openstack


def server_view(server):
    return {"id": server.id, "name": server.name, "status": server.status,
            "addresses": server.addresses or {}, "flavor": server.flavor,
            "created": server.created_at, "updated": server.updated_at}


def volume_view(volume):
    return {"id": volume.id, "name": volume.name, "status": volume.status,
            "size": volume.size, "attachments": volume.attachments or []}


def find_server(conn, name):
    return conn.compute.find_server(name, ignore_missing=False)


def find_volume(conn, name):
    return conn.block_storage.find_volume(name, ignore_missing=False)


def token(conn, step):
    return {"token_length": len(conn.authorize()), "project_id": conn.current_project_id}


def flavors(conn, step):
    return {"flavors": [{"id": f.id, "name": f.name, "vcpus": f.vcpus, "ram": f.ram, "disk": f.disk}
                        for f in conn.compute.flavors()]}


def images(conn, step):
    return {"images": [{"id": i.id, "name": i.name, "status": i.status} for i in conn.image.images()]}


def create_server(conn, step):
    # find_* look an id up first, then by name: the lookup every client does.
    image = conn.image.find_image(step["image"], ignore_missing=False)
    flavor = conn.compute.find_flavor(step["flavor"], ignore_missing=False)
    network = conn.network.find_network(step["network"], ignore_missing=False)
    attrs = {"name": step["name"], "image_id": image.id, "flavor_id": flavor.id, "networks": [{"uuid": network.id}]}
    if step.get("user_data"):
        # The proxy sends user_data as given: Nova wants it in base64.
        attrs["user_data"] = base64.b64encode(step["user_data"].encode()).decode()
    server = conn.compute.create_server(**attrs)
    server = conn.compute.wait_for_server(server, status="ACTIVE", wait=step["wait"])
    return server_view(server)


def show_server(conn, step):
    return server_view(conn.compute.get_server(find_server(conn, step["name"]).id))


def list_servers(conn, step):
    return {"servers": [server_view(s) for s in conn.compute.servers()]}


def create_volume(conn, step):
    volume = conn.block_storage.create_volume(name=step["name"], size=step["size"])
    volume = conn.block_storage.wait_for_status(volume, status="available", failures=["error"], wait=step["wait"])
    return volume_view(volume)


def attach_volume(conn, step):
    server = find_server(conn, step["server"])
    volume = find_volume(conn, step["volume"])
    attachment = conn.compute.create_volume_attachment(server, volume_id=volume.id)
    volume = conn.block_storage.wait_for_status(volume, status="in-use", failures=["error"], wait=step["wait"])
    return {"attachment": {"id": attachment.id, "device": attachment.device, "volume_id": attachment.volume_id,
                           "server_id": attachment.server_id}, "volume": volume_view(volume)}


def detach_volume(conn, step):
    server = find_server(conn, step["server"])
    volume = find_volume(conn, step["volume"])
    conn.compute.delete_volume_attachment(volume.id, server, ignore_missing=False)
    volume = conn.block_storage.wait_for_status(volume, status="available", failures=["error"], wait=step["wait"])
    return volume_view(volume)


def delete_volume(conn, step):
    volume = find_volume(conn, step["name"])
    conn.block_storage.delete_volume(volume, ignore_missing=False)
    conn.block_storage.wait_for_delete(volume, wait=step["wait"])
    return {"id": volume.id}


def delete_server(conn, step):
    server = find_server(conn, step["name"])
    conn.compute.delete_server(server, ignore_missing=False)
    conn.compute.wait_for_delete(server, wait=step["wait"])
    return {"id": server.id}


STEPS = {f.__name__: f for f in (token, flavors, images, create_server, show_server, list_servers, create_volume,
                                  attach_volume, detach_volume, delete_volume, delete_server)}


def main():
    plan = json.load(open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin)
    results = []
    conn = openstack.connect()
    for number, step in enumerate(plan["steps"]):
        try:
            if step["do"] not in STEPS:
                raise ValueError("unknown step %r; known: %s" % (step["do"], ", ".join(STEPS)))
            result = STEPS[step["do"]](conn, step)
        except Exception as e:  # every failure is reported as JSON, with the steps that ran
            print(json.dumps({"results": results, "error": {"step": number, "do": step.get("do"),
                                                            "type": type(e).__name__, "message": str(e)}}, default=str))
            return 1
        results.append(dict(result, do=step["do"]))
    print(json.dumps({"results": results}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
