#!/usr/bin/env python3
"""Regenerates resource-spec.json from the CloudFormation registry schemas that
cfn-lint bundles (cfnlint/data/schemas), for exactly the resource types the
template uses. Run: python3 deploy/testdata/gen-resource-spec.py > deploy/testdata/resource-spec.json
The Go test only reads the JSON; this script documents where it came from."""
import json
import os
import re
import sys

import cfnlint
from cfnlint.version import __version__ as cfnlint_version

TYPES = [
    "AWS::Batch::ComputeEnvironment",
    "AWS::Batch::JobQueue",
    "AWS::CloudFront::Distribution",
    "AWS::CloudFront::KeyGroup",
    "AWS::CloudFront::OriginAccessControl",
    "AWS::CloudFront::PublicKey",
    "AWS::EC2::InternetGateway",
    "AWS::EC2::LaunchTemplate",
    "AWS::EC2::Route",
    "AWS::EC2::RouteTable",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::Subnet",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::VPC",
    "AWS::EC2::VPCGatewayAttachment",
    "AWS::ECR::Repository",
    "AWS::IAM::InstanceProfile",
    "AWS::IAM::OIDCProvider",
    "AWS::IAM::Role",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
]
MAX_DEPTH = 4  # deep enough for LaunchTemplateData.BlockDeviceMappings[].Ebs.*

root = os.path.join(os.path.dirname(cfnlint.__file__), "data", "schemas")
index = dict(re.findall(r'"(AWS::[^"]+)": "([0-9a-f]+)"',
                        open(os.path.join(root, "providers", "us_east_1.py")).read()))


def resolve(schema, node):
    while "$ref" in node:
        name = node["$ref"].split("/")[-1]
        node = schema["definitions"][name]
    return node


def props_of(schema, node, depth):
    """Returns {name: sub-spec} for an object node, or None when its keys are free-form."""
    node = resolve(schema, node)
    if node.get("type") == "array" or "items" in node:
        return props_of(schema, node.get("items", {}), depth)
    properties = dict(node.get("properties", {}))
    for alt in node.get("oneOf", []) + node.get("anyOf", []):
        properties.update(resolve(schema, alt).get("properties", {}))
    if not properties or node.get("additionalProperties", False) is not False:
        return None
    out = {}
    for name, sub in properties.items():
        spec = {}
        if depth < MAX_DEPTH:
            children = props_of(schema, sub, depth + 1)
            if children is not None:
                spec["properties"] = children
                req = resolve(schema, sub)
                if req.get("type") == "array" or "items" in req:
                    spec["list"] = True
                    req = resolve(schema, req.get("items", {}))
                if req.get("required"):
                    spec["required"] = sorted(req["required"])
        out[name] = spec
    return out


types = {}
for t in TYPES:
    schema = json.load(open(os.path.join(root, "resources", index[t] + ".json")))
    readonly = [p.split("/")[2] for p in schema.get("readOnlyProperties", []) if p.count("/") == 2]
    entry = {
        "properties": {k: v for k, v in props_of(schema, schema, 1).items() if k not in readonly},
        "required": sorted(schema.get("required", [])),
        "attributes": sorted(readonly),
    }
    groups = [sorted(alt["required"]) for alt in schema.get("oneOf", []) if alt.get("required")]
    if groups:
        entry["required_one_of"] = groups
    types[t] = entry

json.dump({
    "source": "CloudFormation registry schemas bundled with cfn-lint %s (us-east-1)" % cfnlint_version,
    "types": types,
}, sys.stdout, indent=1, sort_keys=True)
sys.stdout.write("\n")
