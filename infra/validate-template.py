#!/usr/bin/env python3
"""Check a SAM template offline: transform it to CloudFormation, then lint the result.

Usage: validate-template.py [--region REGION] [--output FILE] TEMPLATE

1. aws-sam-translator turns the SAM template into plain CloudFormation, as the
   AWS::Serverless transform does on deployment; SAM errors (an unknown event
   property, a bad policy template) are printed and the exit status is 1.
2. cfn-lint checks the CloudFormation template: resource schemas, references, and
   rules across resources (a FIFO queue's batch size, a dead-letter queue's type).
   Errors make the exit status 1; warnings are printed only.

cfn-lint run on a SAM template itself checks the AWS::Serverless resources against
SAM's schema without transforming them, so it misses mistakes that only show in the
resources SAM generates, such as an SQS event's FunctionResponseTypes or its batch
size on a FIFO queue.

--output FILE also writes the transformed template (JSON) to FILE. Local CodeUri
paths, which `sam package` would upload, become placeholder S3 locations whose key is
the path as written, relative to the template's directory.

Needs no AWS credentials and no network. Run it with the virtualenv that
infra/deps.sh makes: ~/.cache/tocsin-venv/bin/python infra/validate-template.py …
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import types

import yaml
from samtranslator.model.exceptions import ExceptionWithMessage, InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

# Placeholder bucket for local code; the S3 key keeps the local path, so the output
# still says where each function's code comes from.
LOCAL_BUCKET = "local-code-uri"


class OfflinePolicyLoader:
    """Managed policy loader without IAM: samtranslator's bundled map of AWS managed
    policies resolves the names it knows; anything else stays as written."""

    def load(self):
        return {}


def localise_code_uris(template):
    """Replaces local CodeUri paths of functions (and of Globals) with S3 locations, as
    `sam package` would after uploading them: samtranslator accepts only S3."""
    sections = [template.get("Globals", {}).get("Function", {})]
    for resource in template.get("Resources", {}).values():
        if isinstance(resource, dict) and resource.get("Type") == "AWS::Serverless::Function":
            sections.append(resource.get("Properties", {}))
    for properties in sections:
        uri = properties.get("CodeUri") if isinstance(properties, dict) else None
        if isinstance(uri, str) and not uri.startswith("s3://"):
            properties["CodeUri"] = {"Bucket": LOCAL_BUCKET, "Key": uri}


def sam_errors(error):
    """The messages of a samtranslator exception, one per cause."""
    if isinstance(error, InvalidDocumentException):
        return [cause.message for cause in error.causes]
    return [error.message]


def transform(template, region):
    translator = Translator(
        managed_policy_map=None,
        sam_parser=Parser(),
        # samtranslator reads only the region (and from it the partition) of its boto3
        # session; a real session would read ~/.aws and $AWS_PROFILE, and fail on an
        # unknown profile.
        boto_session=types.SimpleNamespace(region_name=region),
    )
    loader = OfflinePolicyLoader()
    return translator.translate(template, parameter_values={}, get_managed_policy_map=loader.load)


def event_sources(template):
    """Logical ids that SAM generates for functions' events and roles, mapped to what
    they come from, so that cfn-lint's findings point back into the SAM template."""
    sources = {}
    for name, resource in template.get("Resources", {}).items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties") or {}
        sources[f"{name}Role"] = f"{name}'s role"
        for event in properties.get("Events") or {}:
            sources[f"{name}{event}"] = f"{name}'s event {event}"
    return sources


def cfn_lint(path, region, sources):
    """Runs cfn-lint from this interpreter's environment and prints its errors and
    warnings (not its informational findings); True when it found no error."""
    cfn_lint_bin = os.path.join(os.path.dirname(sys.executable), "cfn-lint")
    command = [cfn_lint_bin] if os.access(cfn_lint_bin, os.X_OK) else ["cfn-lint"]
    command += ["--regions", region, "--format", "json", "--non-zero-exit-code", "none", "--", path]
    result = subprocess.run(command, capture_output=True, text=True)
    try:
        findings = json.loads(result.stdout)
    except json.JSONDecodeError:
        print(f"cfn-lint failed (exit status {result.returncode}):", file=sys.stderr)
        print((result.stdout + result.stderr).strip(), file=sys.stderr)
        return False
    errors = 0
    for finding in findings:
        level = finding["Level"]
        if level not in ("Error", "Warning"):
            continue
        errors += level == "Error"
        steps = finding["Location"]["Path"]
        where = "/".join(str(step) for step in steps)
        if len(steps) > 1 and steps[0] == "Resources" and steps[1] in sources:
            where += f" ({sources[steps[1]]})"
        print(f"{finding['Rule']['Id']} {level.lower()}: {where}: {finding['Message']}", file=sys.stderr)
    return errors == 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", help="the SAM template (YAML or JSON)")
    parser.add_argument("--output", help="also write the transformed template (JSON) here")
    parser.add_argument(
        "--region",
        default="us-east-1",
        help="region for the pseudo parameters and cfn-lint's checks (default us-east-1)",
    )
    args = parser.parse_args()

    try:
        with open(args.template, encoding="utf-8") as file:
            # yaml_parse knows the short forms of intrinsic functions (!Ref, !Sub, !If, …).
            template = yaml_parse(file.read())
    except (OSError, yaml.YAMLError) as error:
        print(f"{args.template}: {error}", file=sys.stderr)
        return 1
    if not isinstance(template, dict):
        print(f"{args.template}: not a template (a mapping at the top)", file=sys.stderr)
        return 1
    localise_code_uris(template)
    sources = event_sources(template)

    try:
        transformed = transform(template, args.region)
    except ExceptionWithMessage as error:
        print(f"{args.template}: SAM transform failed:", file=sys.stderr)
        for message in sam_errors(error):
            print(f"  {message}", file=sys.stderr)
        return 1

    text = json.dumps(transformed, indent=2, sort_keys=True) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as file:
            file.write(text)

    with tempfile.TemporaryDirectory(prefix="validate-template-") as tmp:
        path = os.path.join(tmp, "transformed.json")
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        if not cfn_lint(path, args.region, sources):
            print(f"{args.template}: cfn-lint found errors in the transformed template", file=sys.stderr)
            return 1

    print(f"{args.template}: valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
