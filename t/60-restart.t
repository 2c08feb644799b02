# Graceful restarts while sign-ins are under way: every sign-in started
# before a restart finishes after it, and no child crashes (the runner then
# checks the error log for crashes and for children that had to be killed).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use Time::HiRes ();

# Half the rounds on a key server with a passphrase, half on one without:
# its random key must survive graceful restarts too.
my $restarts = 10;
plan tests => $restarts + 2;

my $vars = Apache::Test::vars();
my @defines = map { ('-D', $_) } split ' ', ($vars->{httpd_defines} // '');
my @httpd = ($vars->{httpd}, '-d', $vars->{serverroot}, '-f', "$vars->{t_conf}/httpd.conf",
             '-D', 'APACHE2', '-D', 'APACHE2_4', '-D', 'PERL_USEITHREADS');

sub generations { my $n = () = error_log() =~ /resuming normal operations/g; return $n }

# Sends a graceful restart and waits, by polling the log, for it to finish.
sub graceful {
    my $before = generations();
    system(@httpd, '-k', 'graceful') == 0 or die "graceful restart failed: $?";
    my $deadline = Time::HiRes::time + 60;
    Time::HiRes::sleep(0.1) until generations() > $before || Time::HiRes::time > $deadline;
    return generations() > $before;
}

reset_fake();
my $finished = 0;
for my $round (1 .. $restarts) {
    my $vhost = $round % 2 ? 'okey' : 'okey_nopass';
    my $ua = browser();
    my $login = start_login($ua, $vhost);
    my $callback = authorize($ua, $login->header('Location'), 'alice@example.com');
    my $restarted = graceful();
    # A fresh connection: the one before the restart may belong to an old child.
    $ua->conn_cache->drop;
    my $res = $ua->get($callback);
    ok($restarted && $res->code == 200, "round $round ($vhost): restarted, and the sign-in started before it finished");
    $finished++ if $res->code == 200;
}
is(fake_state()->{counters}{'openai.create_service_account'}, $finished, 'one key per finished sign-in');
unlike(error_log(), qr/exit signal|still did not exit/, 'no child crashed or hung');
