package deploy

import (
	"fmt"
	"strings"
	"testing"
)

// The optional CloudFront distribution serves results only to signed URLs,
// reads the private bucket through Origin Access Control, and exists only
// when a public key is given.
func TestCloudFrontLinks(t *testing.T) {
	tmpl := decodeTemplate(t)
	for _, name := range []string{"LinkSigningPublicKey", "LinkSigningKeyGroup", "LinkOriginAccessControl", "LinkDistribution"} {
		if c := resource(t, tmpl, name)["Condition"]; c != "CreateCloudFront" {
			t.Errorf("%s: Condition = %v, want CreateCloudFront (nothing without CloudFrontPublicKey)", name, c)
		}
	}
	for _, name := range []string{"CloudFrontDomain", "CloudFrontKeyPairId"} {
		out, _ := tmpl["Outputs"].(map[string]any)[name].(map[string]any)
		if out == nil || out["Condition"] != "CreateCloudFront" {
			t.Errorf("output %s missing or not conditional on CreateCloudFront", name)
		}
	}
	oac := props(t, tmpl, "LinkOriginAccessControl")["OriginAccessControlConfig"].(map[string]any)
	if oac["OriginAccessControlOriginType"] != "s3" || oac["SigningBehavior"] != "always" || oac["SigningProtocol"] != "sigv4" {
		t.Errorf("origin access control %v: want s3, always, sigv4", oac)
	}
	dist := props(t, tmpl, "LinkDistribution")["DistributionConfig"].(map[string]any)
	origin := dist["Origins"].([]any)[0].(map[string]any)
	if fmt.Sprint(origin["OriginAccessControlId"]) != fmt.Sprint(map[string]any{"Fn::GetAtt": []any{"LinkOriginAccessControl", "Id"}}) {
		t.Errorf("origin reads the bucket with %v, want the origin access control", origin["OriginAccessControlId"])
	}
	behavior := dist["DefaultCacheBehavior"].(map[string]any)
	if fmt.Sprint(behavior["TrustedKeyGroups"]) != fmt.Sprint([]any{map[string]any{"Ref": "LinkSigningKeyGroup"}}) {
		t.Errorf("TrustedKeyGroups %v: unsigned requests would be served", behavior["TrustedKeyGroups"])
	}
	if behavior["ViewerProtocolPolicy"] != "https-only" {
		t.Errorf("ViewerProtocolPolicy %v, want https-only", behavior["ViewerProtocolPolicy"])
	}
	if _, ok := dist["CacheBehaviors"]; ok {
		t.Error("extra cache behaviours: each must trust the key group too")
	}

	// The bucket policy lets this distribution read runs/ and nothing else.
	found := false
	for _, s := range props(t, tmpl, "BucketPolicy")["PolicyDocument"].(map[string]any)["Statement"].([]any) {
		st, ok := s.(map[string]any)
		if !ok {
			continue
		}
		ifs, ok := st["Fn::If"].([]any)
		if !ok || ifs[0] != "CreateCloudFront" {
			continue
		}
		found = true
		allow := ifs[1].(map[string]any)
		src := fmt.Sprint(allow["Condition"])
		if allow["Action"] != "s3:GetObject" || !strings.Contains(fmt.Sprint(allow["Resource"]), "${Bucket.Arn}/runs/*") ||
			!strings.Contains(fmt.Sprint(allow["Resource"]), "${Bucket.Arn}/${StorePrefix}/runs/*") ||
			!strings.Contains(src, "AWS:SourceArn") || !strings.Contains(src, "distribution/${LinkDistribution}") {
			t.Errorf("CloudFront's bucket access %v: want s3:GetObject on the store's runs/* for this distribution only", allow)
		}
	}
	if !found {
		t.Error("the bucket policy has no statement for CloudFront under CreateCloudFront")
	}
}
