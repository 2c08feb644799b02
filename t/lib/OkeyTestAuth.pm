package OkeyTestAuth;
# Stands in for an authentication module in front of openaikey-issue: sets
# r->user to the base64url-decoded X-Test-User header, whatever it holds.
use strict;
use warnings;

use Apache2::Const -compile => qw(OK DECLINED);
use Apache2::RequestRec ();
use MIME::Base64 qw(decode_base64url);

sub handler {
    my ($r) = @_;
    my $user = $r->headers_in->{'X-Test-User'};
    return Apache2::Const::DECLINED unless defined $user;
    $r->user(decode_base64url($user));
    return Apache2::Const::OK;
}

1;
