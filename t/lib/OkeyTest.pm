package OkeyTest;
# Helpers for the suite: drive a sign-in like a browser, and read or set the
# fakes' state.
use strict;
use warnings;

use Apache::Test ();
use Apache::TestRequest ();
use Exporter 'import';
use HTTP::Cookies ();
use HTTP::Request ();
use JSON::PP ();
use LWP::UserAgent ();
use Time::HiRes ();
use Time::Local ();
use URI ();

our @EXPORT = qw(upstream_timeout main_url vhost_url browser reset_fake seed_tenant merge_fake fake_state add_fault
                 first_reaps_done reap_now release_fault
                 start_login authorize sign_in error_log default_project);

my $JSON = JSON::PP->new->canonical->utf8;

# The key servers' OpenAIKeyTimeout: longer under valgrind (OKEY_SLOW).
sub upstream_timeout { return $ENV{OKEY_VALGRIND} ? 8 : 2 }

sub main_url { return 'http://127.0.0.1:' . Apache::Test::vars('port') . ($_[0] // '') }

sub vhost_url {
    my ($vhost, $path) = @_;
    my $port = Apache::Test::config()->{vhosts}{$vhost}{port} or die "no vhost $vhost";
    return "http://127.0.0.1:$port" . ($path // '');
}

# A browser: cookies, no automatic redirects, keep-alive so that one browser
# talks to one httpd child.
sub browser {
    return OkeyTest::Browser->new(cookie_jar => HTTP::Cookies->new, max_redirect => 0,
                                  keep_alive => 8, timeout => 30);
}

my $control = LWP::UserAgent->new(timeout => 30);

sub default_project {
    return { id => 'proj_personal', object => 'organization.project', name => 'personal',
             status => 'active', created_at => 1711471533, archived_at => undef };
}

# Resets the fakes; the patch is merged into their default state. The
# project "personal" keeps one id across resets so that project ids cached
# by httpd children stay true.
sub reset_fake {
    my ($patch) = @_;
    $patch ||= {};
    $patch->{openai}{projects} ||= [default_project()];
    my $res = $control->post(main_url('/fake/reset'), Content => $JSON->encode($patch));
    die 'reset failed: ' . $res->status_line unless $res->is_success;
}

# Resets the fakes with tenant $tenant holding project $project (id
# proj_$tenant) and its service accounts @accounts.
sub seed_tenant {
    my ($tenant, $project, @accounts) = @_;
    reset_fake({ tenants => { $tenant => {
        projects => [{ id => "proj_$tenant", object => 'organization.project', name => $project,
                       status => 'active', archived_at => undef, created_at => 1711471533 }],
        accounts => { "proj_$tenant" => \@accounts } } } });
}

# Merges a patch into the fakes' state without resetting it.
sub merge_fake {
    my ($patch) = @_;
    my $res = $control->post(main_url('/fake/merge'), Content => $JSON->encode($patch));
    die 'merge failed: ' . $res->status_line unless $res->is_success;
}

sub fake_state { return $JSON->decode($control->get(main_url('/fake/state'))->decoded_content) }

sub add_fault {
    my (%fault) = @_;
    $fault{times} //= 1;
    my $res = $control->post(main_url('/fake/fault'), Content => $JSON->encode(\%fault));
    die 'fault failed: ' . $res->status_line unless $res->is_success;
}

# Ends the waits of the faults held under $name.
sub release_fault {
    my ($name) = @_;
    my $res = $control->get(main_url("/fake/release?$name"));
    die 'release failed: ' . $res->status_line unless $res->is_success;
}

# GET the login handler ($path: '/' or e.g. '/?ttl=8h'); returns its
# response (a 302 to the provider).
sub start_login {
    my ($ua, $vhost, $path) = @_;
    return $ua->get(vhost_url($vhost // 'okey', $path // '/'));
}

# Follows the provider's authorization request as $email; %claims are
# overrides for the ID token. Returns the callback URL the provider sends
# the browser to.
sub authorize {
    my ($ua, $authorize_url, $email, %claims) = @_;
    my $uri = URI->new($authorize_url);
    $uri->query_form($uri->query_form, login_hint => $email,
                     map { ("x_$_" => $claims{$_}) } sort keys %claims);
    my $res = $ua->get($uri);
    die 'authorize: ' . $res->status_line . ' ' . $res->decoded_content unless $res->code == 302;
    return $res->header('Location');
}

# The whole sign-in; returns the callback's response.
sub sign_in {
    my ($ua, $email, %opts) = @_;
    my $login = start_login($ua, delete $opts{vhost}, delete $opts{login});
    die 'login: ' . $login->status_line unless $login->code == 302;
    my $callback = authorize($ua, $login->header('Location'), $email, %opts);
    return $ua->get($callback);
}

# Waits, at most three minutes, until each of @vhosts has ended the reap it
# runs soon after startup: its requests to the fakes would count with a
# test's own. True when all have.
sub first_reaps_done {
    my (@vhosts) = @_;
    my $deadline = time + 180;
    my @waiting = @vhosts;
    while (@waiting && time < $deadline) {
        @waiting = grep {
            my $res = $control->get(vhost_url($_, '/status'));
            !($res->is_success && $JSON->decode($res->decoded_content)->{last_reap}{end});
        } @waiting;
        select(undef, undef, undef, 0.2) if @waiting;
    }
    return !@waiting;
}

# Runs a reap of $vhost now and returns /revoke's last answer; a reap that
# outlasts the handler's wait answers 202 and is asked after again.
sub reap_now {
    my ($vhost) = @_;
    my $res;
    my $deadline = time + 60;
    # /revoke within two seconds of a reap's end reports that reap.
    my $end = $JSON->decode(browser()->get(vhost_url($vhost, '/status'))->decoded_content)->{last_reap}{end};
    if ($end && $end =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)Z$/) {
        my $ended = Time::Local::timegm($6, $5, $4, $3, $2 - 1, $1);
        Time::HiRes::sleep(0.1) while time < $ended + 3 && time < $deadline;
    }
    do {
        $res = browser()->request(HTTP::Request->new(POST => vhost_url($vhost, '/revoke'),
                                                     [Accept => 'application/json']));
        Time::HiRes::sleep(0.5) if $res->code == 202;
    } while ($res->code == 202 && time < $deadline);
    return $res;
}

sub error_log {
    my $path = Apache::Test::vars('t_logs') . '/error_log';
    open my $fh, '<', $path or die "open $path: $!";
    local $/;
    return scalar <$fh>;
}

1;

package OkeyTest::Browser;
# httpd closes a kept-alive connection once it has idled KeepAliveTimeout
# (slow steps under valgrind reach it). A request sent just as it closes
# never reaches httpd, and LWP answers it with a 500 of its own: that one
# is sent once more, on a new connection, and said so.
use parent -norequire, 'LWP::UserAgent';

sub send_request {
    my ($self, $request, @rest) = @_;
    my $res = $self->SUPER::send_request($request, @rest);
    if ($res->code == 500 && ($res->header('Client-Warning') // '') eq 'Internal response'
        && $res->message =~ /closed connection without sending any data back/) {
        print STDERR '# sent again after a kept-alive connection closed: ',
                     $request->method, ' ', $request->uri->path, "\n";
        $res = $self->SUPER::send_request($request, @rest);
    }
    return $res;
}

1;
